package lockdown

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a usbmuxd message header.
const HeaderSize = 16

// MaxMessageSize is the default bound on a whole usbmuxd message: 1 MiB, far above any reply.
const MaxMessageSize = 1 << 20

// MessageType is the usbmuxd header message type.
type MessageType uint32

// usbmuxd message types.
const (
	TypeResult       MessageType = 1
	TypeConnect      MessageType = 2
	TypeListen       MessageType = 3
	TypeDeviceAdd    MessageType = 4
	TypeDeviceRemove MessageType = 5
	TypeDevicePaired MessageType = 6
	TypePlist        MessageType = 8
)

// usbmuxd protocol versions.
const (
	VersionBinary uint32 = 0
	VersionPlist  uint32 = 1
)

// ResultCode is a usbmuxd RESULT value.
type ResultCode uint32

// usbmuxd result codes (5 is unnamed; libimobiledevice also returns errno values).
const (
	ResultOK            ResultCode = 0
	ResultBadCommand    ResultCode = 1
	ResultBadDevice     ResultCode = 2
	ResultConnRefused   ResultCode = 3
	ResultNoSuchService ResultCode = 4
	ResultBadVersion    ResultCode = 6
)

// ErrShortMessage reports a header length below HeaderSize.
var ErrShortMessage = errors.New("lockdown: usbmuxd length shorter than header")

// Header is the 16-byte little-endian usbmuxd message header.
type Header struct {
	Length  uint32 // total length including the header
	Version uint32
	Type    MessageType
	Tag     uint32
}

// Message is a usbmuxd header plus payload.
type Message struct {
	Header
	Payload []byte
}

// AppendBinary appends the encoded header to b.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	b = binary.LittleEndian.AppendUint32(b, h.Length)
	b = binary.LittleEndian.AppendUint32(b, h.Version)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Type))
	b = binary.LittleEndian.AppendUint32(b, h.Tag)
	return b, nil
}

// ParseHeader decodes a usbmuxd header from the first HeaderSize bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, io.ErrUnexpectedEOF
	}
	h := Header{
		Length:  binary.LittleEndian.Uint32(b[0:]),
		Version: binary.LittleEndian.Uint32(b[4:]),
		Type:    MessageType(binary.LittleEndian.Uint32(b[8:])),
		Tag:     binary.LittleEndian.Uint32(b[12:]),
	}
	if h.Length < HeaderSize {
		return h, fmt.Errorf("%w: %d", ErrShortMessage, h.Length)
	}
	return h, nil
}

// ReadMessage reads one usbmuxd message of at most max bytes in total; max <= 0 means MaxMessageSize.
func ReadMessage(r io.Reader, max int) (*Message, error) {
	if max <= 0 {
		max = MaxMessageSize
	}
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return nil, err
	}
	h, err := ParseHeader(hb[:])
	if err != nil {
		return nil, err
	}
	if uint64(h.Length) > uint64(max) {
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, h.Length, max)
	}
	payload, err := readBody(r, int(h.Length)-HeaderSize)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payload: payload}, nil
}

// MarshalBinary encodes m, computing Length from the payload.
func (m *Message) MarshalBinary() ([]byte, error) {
	total := uint64(HeaderSize) + uint64(len(m.Payload))
	if total > 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, total)
	}
	h := m.Header
	h.Length = uint32(total)
	b, _ := h.AppendBinary(make([]byte, 0, total))
	return append(b, m.Payload...), nil
}

// WriteMessage writes m in one Write, with Length computed from the payload.
func WriteMessage(w io.Writer, m *Message) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
