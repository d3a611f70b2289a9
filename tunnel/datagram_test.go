package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
)

// dgPacket is an IPv6 packet of n bytes (n ≥ 40).
func dgPacket(n int, fill byte) []byte {
	p := bytes.Repeat([]byte{fill}, n)
	copy(p, make([]byte, 40))
	p[0] = 0x60
	p[4], p[5] = byte((n-40)>>8), byte(n-40)
	return p
}

// messages returns one message per Read, then io.EOF.
type messages [][]byte

func (m *messages) Read(p []byte) (int, error) {
	if len(*m) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*m)[0])
	*m = (*m)[1:]
	return n, nil
}

// TestDatagramReader: only reads that are exactly one IPv6 packet pass; the padding datagram,
// a truncated packet and a packet with trailing bytes are dropped and counted, and the packets
// that pass form a stream the PacketReader reads back one by one.
func TestDatagramReader(t *testing.T) {
	a, b := dgPacket(60, 'a'), dgPacket(1400, 'b')
	m := messages{
		bytes.Repeat([]byte{'x'}, 1024), a, dgPacket(100, 'c')[:80], append(dgPacket(50, 'd'), 0), b,
	}
	var dropped atomic.Uint64
	pr := NewPacketReader(&datagramReader{r: &m, dropped: &dropped}, 16<<10)
	for _, want := range [][]byte{a, b} {
		buf := make([]byte, 2048)
		n, err := pr.ReadPacket(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("read %d bytes, %v", n, err)
		}
	}
	if _, err := pr.ReadPacket(make([]byte, 2048)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: %v", err)
	}
	if dropped.Load() != 3 {
		t.Fatalf("dropped %d, want 3", dropped.Load())
	}
}

// limitWriter takes messages up to max bytes and drops larger ones as a datagram transport does;
// fail, once set, is returned for every Write.
type limitWriter struct {
	max  int
	got  [][]byte
	fail error
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	if len(p) > w.max {
		return 0, fmt.Errorf("%d bytes: %w", len(p), ErrPacketDropped)
	}
	w.got = append(w.got, bytes.Clone(p))
	return len(p), nil
}

// TestDatagramWriter: each packet is one Write; a packet the transport drops is counted and the
// rest still go; any other error stops the batch.
func TestDatagramWriter(t *testing.T) {
	lw := &limitWriter{max: 1000}
	var dropped atomic.Uint64
	dw := &datagramWriter{w: lw, dropped: &dropped}
	pkts := [][]byte{dgPacket(100, 1), dgPacket(1500, 2), dgPacket(200, 3)}
	n, b, err := dw.WritePackets(pkts)
	if err != nil || n != 2 || b != 300 || dropped.Load() != 1 || len(lw.got) != 2 || !bytes.Equal(lw.got[1], pkts[2]) {
		t.Fatalf("sent %d (%d bytes), dropped %d, writes %d, err %v", n, b, dropped.Load(), len(lw.got), err)
	}
	lw.fail = io.ErrClosedPipe
	if _, _, err := dw.WritePackets(pkts); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("a failing transport: %v", err)
	}
}
