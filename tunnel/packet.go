package tunnel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	br *bufio.Reader
}

// NewPacketReader reads packets from r through a buffer of size bytes (≤ 0: DefaultReadBuffer).
func NewPacketReader(r io.Reader, size int) *PacketReader {
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

// Buffered reports whether a whole packet is already buffered, so ReadPacket will not block.
func (r *PacketReader) Buffered() bool {
	b := r.br.Buffered()
	if b < IPv6HeaderLen {
		return false
	}
	hdr, _ := r.br.Peek(IPv6HeaderLen)
	n, err := PacketLen(hdr)
	return err != nil || b >= n // a bad header is "ready" too: ReadPacket reports it at once
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// PacketWriter writes packets to a transport stream, each with exactly one Write call:
// CoreDeviceProxy is read-boundary-sensitive and must not see packets coalesced (tunnel.md §6).
type PacketWriter struct {
	w io.Writer
}

// NewPacketWriter writes packets to w.
func NewPacketWriter(w io.Writer) *PacketWriter { return &PacketWriter{w: w} }

// WritePacket checks that p is one IPv6 packet and writes it with one Write call.
func (w *PacketWriter) WritePacket(p []byte) error {
	if err := CheckPacket(p); err != nil {
		return fmt.Errorf("tunnel: packet stream: %w", err)
	}
	_, err := w.w.Write(p)
	return err
}
