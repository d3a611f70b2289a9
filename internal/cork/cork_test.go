package cork

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
)

// recConn records every Write it gets; failAfter > 0 makes the Write after that many fail.
type recConn struct {
	net.Conn
	mu        sync.Mutex
	writes    [][]byte
	failAfter int
}

var errBroken = errors.New("broken pipe")

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAfter > 0 && len(r.writes) >= r.failAfter {
		return 0, errBroken
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recConn) joined() []byte { return bytes.Join(r.writes, nil) }

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func TestHeldWritesLeaveAsOne(t *testing.T) {
	r := &recConn{}
	c := New(r)
	var want []byte
	c.Hold()
	for i := range 10 {
		p := fill(1000+i, byte(i))
		want = append(want, p...)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("held write %d: %d, %v", i, n, err)
		}
	}
	if len(r.writes) != 0 {
		t.Fatalf("%d writes went out while held", len(r.writes))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(r.writes) != 1 || !bytes.Equal(r.writes[0], want) {
		t.Fatalf("%d writes after Flush, want one with the held bytes in order", len(r.writes))
	}
	// After Flush writes go straight through again.
	c.Write([]byte("a"))
	c.Write([]byte("b"))
	if len(r.writes) != 3 {
		t.Fatalf("%d writes, want 3: writes after Flush must not be held", len(r.writes))
	}
	if err := c.Flush(); err != nil || len(r.writes) != 3 {
		t.Fatalf("an empty Flush wrote or failed: %d writes, %v", len(r.writes), err)
	}
}

func TestHeldWritesSplitAtLimit(t *testing.T) {
	r := &recConn{}
	c := New(r)
	var want []byte
	c.Hold()
	sizes := []int{60 << 10, 60 << 10, 60 << 10, Limit + 1, 5, Limit, 7}
	for i, n := range sizes {
		p := fill(n, byte(i))
		want = append(want, p...)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.joined(), want) {
		t.Fatal("bytes lost or reordered")
	}
	for i, w := range r.writes {
		if len(w) > Limit && len(w) != Limit+1 {
			t.Fatalf("write %d holds %d bytes, over the %d limit", i, len(w), Limit)
		}
	}
	// 60+60 | 60 | Limit+1 | 5 | Limit | 7
	if len(r.writes) != 6 {
		t.Fatalf("%d writes, want 6", len(r.writes))
	}
}

func TestFailedHeldWriteSticks(t *testing.T) {
	r := &recConn{failAfter: 1}
	c := New(r)
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	c.Hold()
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatalf("a held write failed before any I/O: %v", err)
	}
	if err := c.Flush(); !errors.Is(err, errBroken) {
		t.Fatalf("Flush: %v, want the write's error", err)
	}
	if _, err := c.Write([]byte("later")); !errors.Is(err, errBroken) {
		t.Fatalf("a Write after the lost bytes: %v, want the error again", err)
	}
	if err := c.Flush(); !errors.Is(err, errBroken) {
		t.Fatalf("second Flush: %v", err)
	}
}

func TestPassThroughErrorDoesNotStick(t *testing.T) {
	r := &recConn{failAfter: 1}
	c := New(r)
	c.Write([]byte("x"))
	if _, err := c.Write([]byte("y")); !errors.Is(err, errBroken) {
		t.Fatalf("got %v", err)
	}
	r.failAfter = 0
	if _, err := c.Write([]byte("z")); err != nil {
		t.Fatalf("a straight-through failure stuck: %v", err)
	}
}

func TestOf(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Of(a) != nil {
		t.Fatal("a plain conn has no Holder")
	}
	c := New(a)
	if Of(c) != c {
		t.Fatal("Of(Conn) is not the Conn")
	}
	if Of(tls.Client(c, &tls.Config{})) != c {
		t.Fatal("Of(tls over Conn) is not the Conn")
	}
	if Of(tls.Client(a, &tls.Config{})) != nil {
		t.Fatal("tls over a plain conn has no Holder")
	}
	if Of(selfConn{a}) != nil {
		t.Fatal("a conn whose NetConn is itself")
	}
}

type selfConn struct{ net.Conn }

func (s selfConn) NetConn() net.Conn { return s }

// countConn counts the writes reaching a socket.
type countConn struct {
	net.Conn
	n int
}

func (c *countConn) Write(p []byte) (int, error) { c.n++; return c.Conn.Write(p) }

// TestUnderTLS: records of several tls.Conn writes between Hold and Flush leave in one socket
// write, and the peer still reads them one record (one write) at a time.
func TestUnderTLS(t *testing.T) {
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(ver), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type res struct {
				reads [][]byte
				err   error
			}
			got := make(chan res, 1)
			cert := peertest.SelfSignedCert(t)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					got <- res{err: err}
					return
				}
				defer nc.Close()
				srv := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: ver, MaxVersion: ver})
				var r res
				buf := make([]byte, 64<<10)
				for {
					n, err := srv.Read(buf)
					if n > 0 {
						r.reads = append(r.reads, bytes.Clone(buf[:n]))
					}
					if err != nil {
						if err != io.EOF {
							r.err = err
						}
						got <- r
						return
					}
				}
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			cc := &countConn{Conn: nc}
			cli := tls.Client(New(cc), &tls.Config{InsecureSkipVerify: true, MinVersion: ver, MaxVersion: ver, DynamicRecordSizingDisabled: true})
			if err := cli.Handshake(); err != nil {
				t.Fatal(err)
			}
			h := Of(cli)
			if h == nil {
				t.Fatal("no Holder under the TLS client")
			}
			before := cc.n
			var sent [][]byte
			h.Hold()
			for i := range 8 {
				p := fill(8000+i*10, byte(i))
				sent = append(sent, p)
				if _, err := cli.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
			if w := cc.n - before; w != 1 {
				t.Fatalf("%d socket writes for 8 held records, want 1", w)
			}
			cli.Close()
			r := <-got
			if r.err != nil {
				t.Fatal(r.err)
			}
			if len(r.reads) != len(sent) {
				t.Fatalf("peer read %d times, want one record per write (%d)", len(r.reads), len(sent))
			}
			for i := range sent {
				if !bytes.Equal(r.reads[i], sent[i]) {
					t.Fatalf("read %d: %d bytes, want write %d's %d bytes", i, len(r.reads[i]), i, len(sent[i]))
				}
			}
		})
	}
}

func TestHoldFlushAllocs(t *testing.T) {
	c := New(&countConn{Conn: discardConn{}})
	p := make([]byte, 8192)
	round := func() {
		c.Hold()
		for range 8 {
			c.Write(p)
		}
		c.Flush()
	}
	round()
	if a := testing.AllocsPerRun(100, round); a > 0.05 { // sync.Pool may drop its buffer under -race or a GC
		t.Fatalf("%v allocations per held batch", a)
	}
}

type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
