package lockdown

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"howett.net/plist"
)

// MaxFrameSize is the default bound on a lockdown frame body: 4 MiB, far above any lockdown reply.
const MaxFrameSize = 4 << 20

// readChunk is the largest amount of body buffer grown ahead of received data.
const readChunk = 64 << 10

// ErrFrameTooLarge reports a declared length above the caller's maximum.
var ErrFrameTooLarge = errors.New("lockdown: frame too large")

// ErrPlistFormat reports a plist body that is neither XML nor binary.
var ErrPlistFormat = errors.New("lockdown: plist is neither XML nor binary")

// ReadFrame reads one big-endian length-prefixed frame body; max <= 0 means MaxFrameSize.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxFrameSize
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	}
	return readBody(r, int(n))
}

// WriteFrame writes body prefixed with its big-endian u32 length.
func WriteFrame(w io.Writer, body []byte) error {
	if uint64(len(body)) > 0xFFFFFFFF {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(body))
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	_, err := w.Write(buf)
	return err
}

// ReadPlist reads one frame (at most MaxFrameSize) and unmarshals its XML or binary plist into v.
func ReadPlist(r io.Reader, v any) error {
	body, err := ReadFrame(r, MaxFrameSize)
	if err != nil {
		return err
	}
	return UnmarshalPlist(body, v)
}

// WritePlist marshals v as an XML plist and writes it as one frame.
func WritePlist(w io.Writer, v any) error {
	body, err := plist.Marshal(v, plist.XMLFormat)
	if err != nil {
		return err
	}
	return WriteFrame(w, body)
}

// UnmarshalPlist decodes an XML or binary plist into v, rejecting text formats and hostile nesting.
func UnmarshalPlist(data []byte, v any) (err error) {
	if !bytes.HasPrefix(data, []byte("bplist")) && !looksXML(data) {
		return ErrPlistFormat
	}
	if err := checkPlistLimits(data); err != nil {
		return err
	}
	defer func() {
		// The plist library re-panics runtime errors; never let hostile input crash the caller.
		if p := recover(); p != nil {
			err = fmt.Errorf("lockdown: plist decode: %v", p)
		}
	}()
	format, err := plist.Unmarshal(data, v)
	if err != nil {
		return err
	}
	if format != plist.XMLFormat && format != plist.BinaryFormat {
		return ErrPlistFormat
	}
	return nil
}

// looksXML reports whether data starts, after an optional BOM and whitespace, with '<'.
func looksXML(data []byte) bool {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) > 0 && data[0] == '<'
}

// readBody reads exactly n bytes, growing the buffer only as data arrives.
func readBody(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}
