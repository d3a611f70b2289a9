package tunnel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// IPv6 stream framing (tunnel.md §6, test-vectors.md §9.4).
const (
	// IPv6HeaderLen is the fixed IPv6 header; its bytes 4..5 are the payload length.
	IPv6HeaderLen = 40
	// MaxPacketLen is the largest packet the stream framing can express (no jumbograms).
	MaxPacketLen = IPv6HeaderLen + 0xffff
	// DefaultReadBuffer is the PacketReader's buffer: it lets one transport read deliver several
	// packets (a TLS record carries at most 16 KiB, a TCP read up to the buffer).
	DefaultReadBuffer = 64 << 10
)

// ErrNotIPv6 means the stream (or a packet) does not hold an IPv6 packet where one must start.
// On a stream this is fatal: like go-ios, and unlike appium-ios-tuntap's one-byte resync, we
// abort rather than guess where the next packet starts.
var ErrNotIPv6 = errors.New("not an IPv6 packet")

// TooLargeError reports a well-framed packet larger than the caller's buffer. The reader has
// skipped it, so the stream stays in sync and the caller may go on reading.
type TooLargeError struct{ Len, Max int }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("tunnel: packet stream: %d-byte packet exceeds the %d-byte buffer; skipped", e.Len, e.Max)
}

// PacketLen returns the length of the IPv6 packet that b starts with, from its header.
func PacketLen(b []byte) (int, error) {
	if len(b) < IPv6HeaderLen {
		return 0, fmt.Errorf("%d bytes, shorter than an IPv6 header: %w", len(b), ErrNotIPv6)
	}
	if v := b[0] >> 4; v != 6 {
		return 0, fmt.Errorf("version nibble %d: %w", v, ErrNotIPv6)
	}
	return IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6])), nil
}

// CheckPacket reports whether p is exactly one IPv6 packet: the only thing a tunnel carries.
func CheckPacket(p []byte) error {
	n, err := PacketLen(p)
	if err != nil {
		return err
	}
	if n != len(p) {
		return fmt.Errorf("header says %d bytes, packet has %d: %w", n, len(p), ErrNotIPv6)
	}
	return nil
}

// PacketReader splits a transport stream into IPv6 packets.
type PacketReader struct {
	br bufferedSource
}

// bufferedSource is what a PacketReader reads through: a bufio.Reader, or the tunnel's
// read-ahead, which it reads in place.
type bufferedSource interface {
	io.Reader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Buffered() int
}

// NewPacketReader reads packets from r through a buffer of size bytes (≤ 0: DefaultReadBuffer);
// the tunnel's read-ahead needs none and is read in place.
func NewPacketReader(r io.Reader, size int) *PacketReader {
	if ra, ok := r.(*readAhead); ok {
		return &PacketReader{br: ra}
	}
	if size <= 0 {
		size = DefaultReadBuffer
	}
	if size < IPv6HeaderLen {
		size = IPv6HeaderLen
	}
	return &PacketReader{br: bufio.NewReaderSize(r, size)}
}

// ReadPacket reads the next packet into buf and returns its length. A packet larger than buf
// is skipped with a *TooLargeError. A stream that ends between packets gives io.EOF, inside
// one io.ErrUnexpectedEOF; a bad version nibble gives ErrNotIPv6 and the stream is unusable.
func (r *PacketReader) ReadPacket(buf []byte) (int, error) {
	hdr, err := r.br.Peek(IPv6HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n, err := PacketLen(hdr)
	if err != nil {
		return 0, fmt.Errorf("tunnel: packet stream: %w", err)
	}
	if n > len(buf) {
		if _, err := r.br.Discard(n); err != nil {
			return 0, noEOF(err)
		}
		return 0, &TooLargeError{Len: n, Max: len(buf)}
	}
	if _, err := io.ReadFull(r.br, buf[:n]); err != nil {
		return 0, noEOF(err)
	}
	return n, nil
}

// Buffered reports whether a whole packet has already arrived (in the reader's buffer, or in
// the tunnel's read-ahead), so ReadPacket will not block.
func (r *PacketReader) Buffered() bool {
	b := r.br.Buffered()
	if b < IPv6HeaderLen {
		return false
	}
	hdr, _ := r.br.Peek(IPv6HeaderLen) // does not block: the bytes are there
	n, err := PacketLen(hdr)
	return err != nil || b >= n // a bad header is "ready" too: ReadPacket reports it at once
}

// Next blocks until the next packet's header has arrived and returns the packet's length;
// ReadPacket then reads it (into a buffer of that length, or skips it given a shorter one).
func (r *PacketReader) Next() (int, error) {
	hdr, err := r.br.Peek(IPv6HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n, err := PacketLen(hdr)
	if err != nil {
		return 0, fmt.Errorf("tunnel: packet stream: %w", err)
	}
	return n, nil
}

// Wait blocks until the next packet's header has arrived (or the stream fails, with the error
// ReadPacket would give), so a caller can hold its buffers only while packets flow.
func (r *PacketReader) Wait() error {
	hdr, err := r.br.Peek(IPv6HeaderLen)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// PacketWriter writes packets to a transport stream. The stream is delimited by the IPv6
// headers, not by writes or TLS records, so by default the packets given to one WritePackets
// call leave in as few Writes as its buffer allows (a TLS connection turns each Write into
// records of up to 16 KiB). NewPacketWriter's writer instead gives every packet its own Write,
// as pymobiledevice3 does for CoreDeviceProxy (tunnel.md §6; see Options.OnePacketPerWrite).
type PacketWriter struct {
	w   io.Writer
	one bool // one Write per packet
	max int  // coalescing buffer size
}

// coalesceBuffers lends coalescing writers their buffer for one WritePackets call, so an idle
// tunnel holds none.
var coalesceBuffers sync.Pool

// DefaultWriteCoalesce is how many bytes of packets a coalescing PacketWriter gathers into one
// Write: four full TLS records.
const DefaultWriteCoalesce = 64 << 10

// NewPacketWriter writes each packet to w with its own Write call.
func NewPacketWriter(w io.Writer) *PacketWriter { return &PacketWriter{w: w, one: true} }

// NewCoalescingWriter writes the packets of each WritePackets call to w in Writes of up to
// size bytes (≤ 0: DefaultWriteCoalesce); a packet larger than that gets a Write of its own.
func NewCoalescingWriter(w io.Writer, size int) *PacketWriter {
	if size <= 0 {
		size = DefaultWriteCoalesce
	}
	return &PacketWriter{w: w, max: size}
}

// WritePacket checks that p is one IPv6 packet and writes it with one Write call.
func (w *PacketWriter) WritePacket(p []byte) error {
	if err := CheckPacket(p); err != nil {
		return fmt.Errorf("tunnel: packet stream: %w", err)
	}
	_, err := w.w.Write(p)
	return err
}

// WritePackets writes pkts, each already checked with CheckPacket, in order: in as few Writes
// as the buffer allows, or one Write each for a NewPacketWriter.
func (w *PacketWriter) WritePackets(pkts [][]byte) error {
	if w.one || len(pkts) == 1 {
		for _, p := range pkts {
			if _, err := w.w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}
	bp, _ := coalesceBuffers.Get().(*[]byte)
	if bp == nil || cap(*bp) < w.max {
		b := make([]byte, 0, w.max)
		bp = &b
	}
	defer coalesceBuffers.Put(bp)
	b := (*bp)[:0]
	for _, p := range pkts {
		if len(b)+len(p) > w.max && len(b) > 0 {
			if _, err := w.w.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		if len(p) > w.max {
			if _, err := w.w.Write(p); err != nil {
				return err
			}
			continue
		}
		b = append(b, p...)
	}
	if len(b) > 0 {
		if _, err := w.w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
