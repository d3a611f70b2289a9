package tlspsk

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn counts the Writes that reach the connection under TLS.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestOneWritePerBatch: an application Write of up to 64 KiB (four records) reaches the
// connection as one Write, a larger one in one Write per 64 KiB of records, and the peer reads
// every byte in order, for every suite.
func TestOneWritePerBatch(t *testing.T) {
	key := psk32(t)
	for _, id := range DefaultSuites {
		t.Run(SuiteName(id), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			sc := make(chan *Conn, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					sc <- nil
					return
				}
				_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
				s := Server(raw, Config{PSK: key})
				if s.Handshake() != nil {
					s.Close()
					sc <- nil
					return
				}
				sc <- s
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
			cc := &countingConn{Conn: raw}
			c := Client(cc, Config{PSK: key, Suites: []uint16{id}})
			defer c.Close()
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			s := <-sc
			if s == nil {
				t.Fatal("server handshake failed")
			}
			defer s.Close()
			for _, tc := range []struct{ size, writes int }{
				{100, 1}, {MaxPlaintext, 1}, {64 << 10, 1}, {64<<10 + 1, 2}, {200 << 10, 4},
			} {
				msg := make([]byte, tc.size)
				rand.Read(msg)
				got := make([]byte, tc.size)
				done := make(chan error, 1)
				go func() { _, err := io.ReadFull(s, got); done <- err }()
				before := cc.writes.Load()
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatalf("%d bytes: %v", tc.size, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes: corrupted", tc.size)
				}
				if n := cc.writes.Load() - before; n != int64(tc.writes) {
					t.Fatalf("a %d-byte Write took %d writes of the connection (want %d)", tc.size, n, tc.writes)
				}
			}
		})
	}
}
