package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
	"testing/iotest"

	"github.com/iosmux/iosmux/internal/peertest"
)

// echoRequest builds an ICMPv6 echo request from src to dst with an n-byte payload and a
// valid checksum.
func echoRequest(src, dst netip.Addr, seq uint16, n int) []byte {
	p := make([]byte, IPv6HeaderLen+8+n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(8+n))
	p[6] = 58 // ICMPv6
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	icmp := p[IPv6HeaderLen:]
	icmp[0] = 128 // echo request
	binary.BigEndian.PutUint16(icmp[4:], 0x1234)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	for i := range n {
		icmp[8+i] = byte(i)
	}
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(s, d, icmp))
	return p
}

func icmpv6Checksum(src, dst [16]byte, icmp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(icmp)))
	l[7] = 58
	add(l[:])
	add(icmp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

var (
	addrA = netip.MustParseAddr("fd00:1::2")
	addrB = netip.MustParseAddr("fd00:1::1")
)

// TestPacketLenVector is test-vectors.md §9.4: an echo request with 8 data bytes has payload
// length 0x0010 and is a 56-byte frame.
func TestPacketLenVector(t *testing.T) {
	p := echoRequest(addrA, addrB, 1, 8)
	if !bytes.Equal(p[4:6], []byte{0x00, 0x10}) {
		t.Fatalf("payload length bytes % x", p[4:6])
	}
	if n, err := PacketLen(p); n != 56 || err != nil || len(p) != 56 {
		t.Fatalf("PacketLen %d %v", n, err)
	}
}

func stream(pkts ...[]byte) []byte { return bytes.Join(pkts, nil) }

func TestPacketReaderSplitsStream(t *testing.T) {
	pkts := [][]byte{
		echoRequest(addrA, addrB, 1, 0),
		echoRequest(addrA, addrB, 2, 1000),
		echoRequest(addrA, addrB, 3, 8),
		echoRequest(addrA, addrB, 4, 16000-48),
	}
	all := stream(pkts...)
	for name, r := range map[string]io.Reader{
		"coalesced":  bytes.NewReader(all),
		"one byte":   iotest.OneByteReader(bytes.NewReader(all)),
		"half reads": iotest.HalfReader(bytes.NewReader(all)),
	} {
		t.Run(name, func(t *testing.T) {
			pr := NewPacketReader(r, 100) // smaller than most packets
			buf := make([]byte, 16000)
			for i, want := range pkts {
				n, err := pr.ReadPacket(buf)
				if err != nil || !bytes.Equal(buf[:n], want) {
					t.Fatalf("packet %d: %d bytes, %v", i, n, err)
				}
			}
			if _, err := pr.ReadPacket(buf); err != io.EOF {
				t.Fatalf("after the last packet: %v, want EOF", err)
			}
		})
	}
}

func TestPacketReaderErrors(t *testing.T) {
	good := echoRequest(addrA, addrB, 1, 8)
	buf := make([]byte, 2000)

	v4 := append([]byte{}, good...)
	v4[0] = 0x45
	_, err := NewPacketReader(bytes.NewReader(stream(good[:0], v4)), 0).ReadPacket(buf)
	if !errors.Is(err, ErrNotIPv6) {
		t.Fatalf("IPv4 on the stream: %v", err)
	}
	pr := NewPacketReader(bytes.NewReader(stream(good, v4)), 0)
	if _, err := pr.ReadPacket(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.ReadPacket(buf); !errors.Is(err, ErrNotIPv6) {
		t.Fatalf("bad version after a good packet: %v", err)
	}

	for name, in := range map[string][]byte{"in the header": good[:20], "in the payload": good[:50]} {
		if _, err := NewPacketReader(bytes.NewReader(in), 0).ReadPacket(buf); err != io.ErrUnexpectedEOF {
			t.Errorf("stream ends %s: %v", name, err)
		}
	}

	// A packet too large for the buffer is skipped; the stream stays in sync.
	big := echoRequest(addrA, addrB, 2, 3000)
	pr = NewPacketReader(bytes.NewReader(stream(big, good)), 0)
	var tl *TooLargeError
	if _, err := pr.ReadPacket(buf); !errors.As(err, &tl) || tl.Len != len(big) || tl.Max != len(buf) {
		t.Fatalf("oversized packet: %v", err)
	}
	if n, err := pr.ReadPacket(buf); err != nil || !bytes.Equal(buf[:n], good) {
		t.Fatalf("packet after the oversized one: %v", err)
	}
}

func TestPacketReaderBuffered(t *testing.T) {
	a, b := echoRequest(addrA, addrB, 1, 8), echoRequest(addrA, addrB, 2, 8)
	pr := NewPacketReader(bytes.NewReader(stream(a, b[:30])), 0)
	buf := make([]byte, 100)
	if pr.Buffered() {
		t.Fatal("nothing read yet, yet Buffered")
	}
	if _, err := pr.ReadPacket(buf); err != nil {
		t.Fatal(err)
	}
	if pr.Buffered() {
		t.Fatal("Buffered with only part of the next packet")
	}
}

// TestPacketReaderDoesNotAllocate: the pump's per-packet path allocates nothing.
func TestPacketReaderDoesNotAllocate(t *testing.T) {
	p := echoRequest(addrA, addrB, 1, 1400)
	src := &repeatReader{p: p}
	pr := NewPacketReader(src, 0)
	buf := make([]byte, 2000)
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := pr.ReadPacket(buf); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per packet", allocs)
	}
	pw := NewPacketWriter(io.Discard)
	if allocs := testing.AllocsPerRun(1000, func() { pw.WritePacket(p) }); allocs != 0 {
		t.Fatalf("%v allocations per written packet", allocs)
	}
}

// repeatReader yields p over and over.
type repeatReader struct {
	p   []byte
	off int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.p[r.off:])
		n += c
		r.off = (r.off + c) % len(r.p)
	}
	return n, nil
}

// writeRecorder records each Write call separately.
type writeRecorder struct{ writes [][]byte }

func (w *writeRecorder) Write(b []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), b...))
	return len(b), nil
}

func TestPacketWriterOneWritePerPacket(t *testing.T) {
	var rec writeRecorder
	pw := NewPacketWriter(&rec)
	a, b := echoRequest(addrA, addrB, 1, 8), echoRequest(addrA, addrB, 2, 9000)
	if err := pw.WritePacket(a); err != nil {
		t.Fatal(err)
	}
	if err := pw.WritePacket(b); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 2 || !bytes.Equal(rec.writes[0], a) || !bytes.Equal(rec.writes[1], b) {
		t.Fatalf("%d writes", len(rec.writes))
	}
	v4 := append([]byte{}, a...)
	v4[0] = 0x45
	for name, p := range map[string][]byte{"ipv4": v4, "truncated": a[:50], "padded": append(a[:56:56], 0), "short": a[:10]} {
		if err := pw.WritePacket(p); !errors.Is(err, ErrNotIPv6) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(rec.writes) != 2 {
		t.Fatal("a rejected packet was written")
	}
}

func FuzzPacketReader(f *testing.F) {
	f.Add(stream(echoRequest(addrA, addrB, 1, 8), echoRequest(addrA, addrB, 2, 100)))
	f.Add([]byte{0x60, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		peertest.BoundAllocs(t, len(in), 64, func() {
			pr := NewPacketReader(bytes.NewReader(in), 64)
			buf := make([]byte, 256)
			for {
				n, err := pr.ReadPacket(buf)
				var tl *TooLargeError
				if errors.As(err, &tl) {
					continue
				}
				if err != nil {
					return
				}
				if CheckPacket(buf[:n]) != nil {
					t.Fatalf("delivered a malformed packet %x", buf[:n])
				}
			}
		})
	})
}

// pieces is a reader that gives its data in reads of the sizes cuts names (cycling; 0 → 1), as
// TLS records of any length would.
type pieces struct {
	data []byte
	cuts []byte
	i    int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(p.cuts) > 0 {
		n = max(int(p.cuts[p.i%len(p.cuts)])*int(p.cuts[p.i%len(p.cuts)])/4, 1) // up to ~16 KiB
		p.i++
	}
	n = min(n, len(b), len(p.data))
	copy(b, p.data[:n])
	p.data = p.data[n:]
	return n, nil
}

type readResult struct {
	pkt     []byte
	tooBig  int
	errKind string
}

// readAll reads packets until an error that ends the stream, recording what a caller sees.
func readAll(pr *PacketReader, bufSize int) []readResult {
	buf := make([]byte, bufSize)
	var out []readResult
	for {
		n, err := pr.ReadPacket(buf)
		var tl *TooLargeError
		switch {
		case errors.As(err, &tl):
			out = append(out, readResult{tooBig: tl.Len})
			continue
		case err == nil:
			out = append(out, readResult{pkt: bytes.Clone(buf[:n])})
			continue
		case errors.Is(err, ErrNotIPv6):
			out = append(out, readResult{errKind: "not IPv6"})
		case err == io.EOF:
			out = append(out, readResult{errKind: "EOF"})
		case err == io.ErrUnexpectedEOF:
			out = append(out, readResult{errKind: "unexpected EOF"})
		default:
			out = append(out, readResult{errKind: err.Error()})
		}
		return out
	}
}

// FuzzReadAhead: the tunnel's in-place reading of its read-ahead chunks (headers and packets
// spanning chunks of any size, oversized packets skipped across them, streams ending anywhere)
// gives exactly what a bufio.Reader over the same stream gives.
func FuzzReadAhead(f *testing.F) {
	two := stream(echoRequest(addrA, addrB, 1, 8), echoRequest(addrA, addrB, 2, 300))
	f.Add(two, []byte{7})
	f.Add(two, []byte{1, 2, 3, 200})
	f.Add(append(two, 0x60, 0, 0), []byte{13})
	f.Add(append(two, 0x40), []byte{255})
	f.Fuzz(func(t *testing.T, in, cuts []byte) {
		want := readAll(NewPacketReader(bytes.NewReader(in), 64), 256)
		ra := newReadAhead(&pieces{data: in, cuts: cuts})
		got := readAll(NewPacketReader(ra, 0), 256)
		ra.wait()
		if len(got) != len(want) {
			t.Fatalf("read-ahead gave %d results, bufio %d: %+v vs %+v", len(got), len(want), got, want)
		}
		for i := range want {
			if !bytes.Equal(got[i].pkt, want[i].pkt) || got[i].tooBig != want[i].tooBig || got[i].errKind != want[i].errKind {
				t.Fatalf("result %d: read-ahead %+v, bufio %+v", i, got[i], want[i])
			}
		}
	})
}
