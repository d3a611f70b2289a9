// Package xpc is the RemoteXPC message codec: the 24-byte wrapper and the XPC object payload.
package xpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Wire constants of the RemoteXPC wrapper and payload (remotexpc.md §2, §5).
const (
	WrapperMagic   uint32 = 0x29B00B92
	PayloadMagic   uint32 = 0x42133742
	PayloadVersion uint32 = 5
	HeaderSize            = 24
	payloadHdrSize        = 8
	// MaxBodySize is the largest body_len accepted; Frida's limit, remotexpc.md §2.
	MaxBodySize = 128<<20 - 1
)

// Flags is the 32-bit word at offset 4 of the wrapper: version byte, type byte, flag bits.
type Flags uint32

// Every known bit of the flags word (remotexpc.md §3, Frida's names).
const (
	// FlagAlwaysSet is protocol version 1, set on every message.
	FlagAlwaysSet Flags = 0x00000001
	// FlagVersion2 would mean protocol version 2; pmd3 calls it PING. Never sent; never emit it.
	FlagVersion2 Flags = 0x00000002
	// TypeHeader (type byte 0) opens a channel; it is the absence of TypeMsg and TypePing.
	TypeHeader Flags = 0x00000000
	// TypeMsg (type byte 1) is an ordinary message (DATA_PRESENT in pmd3).
	TypeMsg Flags = 0x00000100
	// TypePing (type byte 2) is a ping with no body.
	TypePing Flags = 0x00000200
	// FlagWantsReply asks for a reply with the same message id.
	FlagWantsReply Flags = 0x00010000
	// FlagIsReply marks a reply.
	FlagIsReply Flags = 0x00020000
	// FlagOpensStreamTX is a HEADER that opens a stream on which the sender transmits a file.
	FlagOpensStreamTX Flags = 0x00100000
	// FlagOpensStreamRX is a HEADER that opens a stream on which the sender receives a file.
	FlagOpensStreamRX Flags = 0x00200000
	// FlagOpensReplyChannel is the HEADER sent on stream 3 to open the reply channel (INIT_HANDSHAKE).
	FlagOpensReplyChannel Flags = 0x00400000
)

// Type returns the message type byte as a flag value (TypeHeader, TypeMsg or TypePing).
func (f Flags) Type() Flags { return f & 0xFF00 }

// Has reports whether every bit of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// String names the flag bits, for logs.
func (f Flags) String() string {
	s := "HEADER"
	switch f.Type() {
	case TypeMsg:
		s = "MSG"
	case TypePing:
		s = "PING"
	case TypeHeader:
	default:
		s = fmt.Sprintf("TYPE(%d)", uint32(f.Type())>>8)
	}
	names := []struct {
		f Flags
		n string
	}{
		{FlagWantsReply, "WANTS_REPLY"}, {FlagIsReply, "IS_REPLY"},
		{FlagOpensStreamTX, "OPENS_STREAM_TX"}, {FlagOpensStreamRX, "OPENS_STREAM_RX"},
		{FlagOpensReplyChannel, "OPENS_REPLY_CHANNEL"},
	}
	rest := f &^ (0xFF00 | FlagAlwaysSet)
	for _, n := range names {
		if f.Has(n.f) {
			s += "|" + n.n
			rest &^= n.f
		}
	}
	if rest != 0 {
		s += fmt.Sprintf("|0x%x", uint32(rest))
	}
	return s
}

// Header is the decoded 24-byte wrapper header.
type Header struct {
	Flags   Flags
	BodyLen uint64
	ID      uint64
}

// Errors returned by the wrapper codec.
var (
	ErrBadMagic    = errors.New("xpc: bad wrapper magic")
	ErrTooLarge    = errors.New("xpc: message body too large")
	ErrShort       = errors.New("xpc: truncated message")
	ErrBadPayload  = errors.New("xpc: bad payload header")
	ErrTrailing    = errors.New("xpc: trailing bytes after object")
	errNeedHeader  = fmt.Errorf("%w: need %d header bytes", ErrShort, HeaderSize)
	errUnsupported = errors.New("xpc: unsupported Go type")
)

// ParseHeader decodes and checks the 24-byte wrapper header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errNeedHeader
	}
	if binary.LittleEndian.Uint32(b) != WrapperMagic {
		return Header{}, fmt.Errorf("%w %#08x", ErrBadMagic, binary.LittleEndian.Uint32(b))
	}
	h := Header{
		Flags:   Flags(binary.LittleEndian.Uint32(b[4:])),
		BodyLen: binary.LittleEndian.Uint64(b[8:]),
		ID:      binary.LittleEndian.Uint64(b[16:]),
	}
	if h.BodyLen > MaxBodySize {
		return Header{}, fmt.Errorf("%w: body_len %d", ErrTooLarge, h.BodyLen)
	}
	return h, nil
}

// Size is the total wire size of the message this header starts.
func (h Header) Size() int { return HeaderSize + int(h.BodyLen) }

// Message is one RemoteXPC wrapper message.
type Message struct {
	Flags Flags
	ID    uint64
	// Body is the payload object (a *Dict on every known service); nil means no payload.
	Body Value
}

// DecodeMessage decodes exactly one whole message held in b.
func DecodeMessage(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if uint64(len(b)-HeaderSize) != h.BodyLen {
		if uint64(len(b)-HeaderSize) < h.BodyLen {
			return nil, fmt.Errorf("%w: have %d of %d body bytes", ErrShort, len(b)-HeaderSize, h.BodyLen)
		}
		return nil, fmt.Errorf("%w: %d bytes past the message", ErrTrailing, uint64(len(b)-HeaderSize)-h.BodyLen)
	}
	m := &Message{Flags: h.Flags, ID: h.ID}
	if h.BodyLen == 0 {
		return m, nil
	}
	body := b[HeaderSize:]
	if len(body) < payloadHdrSize+4 {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrBadPayload, len(body))
	}
	if mg := binary.LittleEndian.Uint32(body); mg != PayloadMagic {
		return nil, fmt.Errorf("%w: magic %#08x", ErrBadPayload, mg)
	}
	if v := binary.LittleEndian.Uint32(body[4:]); v != PayloadVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadPayload, v)
	}
	m.Body, err = DecodeObject(body[payloadHdrSize:])
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Encode returns the wire bytes of m.
func (m *Message) Encode() ([]byte, error) { return m.AppendEncode(nil) }

// AppendEncode appends the wire bytes of m to dst.
func (m *Message) AppendEncode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, WrapperMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Flags))
	dst = binary.LittleEndian.AppendUint64(dst, 0) // body_len, patched below
	dst = binary.LittleEndian.AppendUint64(dst, m.ID)
	if m.Body == nil {
		return dst, nil
	}
	dst = binary.LittleEndian.AppendUint32(dst, PayloadMagic)
	dst = binary.LittleEndian.AppendUint32(dst, PayloadVersion)
	dst, err := appendObject(dst, m.Body, 0)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - HeaderSize
	if n > MaxBodySize {
		return dst[:start], fmt.Errorf("%w: body_len %d", ErrTooLarge, n)
	}
	binary.LittleEndian.PutUint64(dst[start+8:], uint64(n))
	return dst, nil
}

// ReadMessage reads one whole message from r, growing its buffer only as bytes arrive.
func ReadMessage(r io.Reader) (*Message, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	h, err := ParseHeader(hdr[:])
	if err != nil {
		return nil, err
	}
	buf := make([]byte, HeaderSize, HeaderSize+min(int(h.BodyLen), 64<<10))
	copy(buf, hdr[:])
	for remaining := int(h.BodyLen); remaining > 0; {
		chunk := min(remaining, 64<<10)
		buf = append(buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(r, buf[len(buf)-chunk:]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrShort, err)
		}
		remaining -= chunk
	}
	return DecodeMessage(buf)
}
