package shim

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
)

// tcpPairs returns two connected loopback TCP pairs: client↔relayA and relayB↔server.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestPipeBothWaysIntact: 4 MiB each way through pipe between kernel sockets (the splice
// path) arrive byte for byte, and the end of one side closes the other.
func TestPipeBothWaysIntact(t *testing.T) {
	client, relayA := tcpPair(t)
	relayB, server := tcpPair(t)
	done := make(chan struct{})
	go func() { pipe(relayA, relayB); close(done) }()
	up, down := make([]byte, 4<<20), make([]byte, 4<<20)
	rand.Read(up)
	rand.Read(down)
	got := make(chan []byte, 2)
	go func() { b, _ := io.ReadAll(io.LimitReader(server, int64(len(up)))); got <- b }()
	go func() { b, _ := io.ReadAll(io.LimitReader(client, int64(len(down)))); got <- b }()
	go client.Write(up)
	go server.Write(down)
	a, b := <-got, <-got
	if !(bytes.Equal(a, up) && bytes.Equal(b, down) || bytes.Equal(a, down) && bytes.Equal(b, up)) {
		t.Fatal("bytes changed in the relay")
	}
	client.Close()
	<-done
	if _, err := server.Read(make([]byte, 1)); err == nil {
		t.Fatal("server end still open after the client left")
	}
}

// bigReads is a net.Conn whose reads deliver up to 1 MiB at once, like a userspace stack's
// connection with a full receive buffer; it has no WriteTo, like gonet's.
type bigReads struct {
	net.Conn
	r io.Reader
}

func (b *bigReads) Read(p []byte) (int, error) { return b.r.Read(p) }

// writeSizes records the size of each Write.
type writeSizes struct {
	net.Conn
	sizes []int
	buf   bytes.Buffer
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.buf.Write(p)
}

// TestRelayLargeBuffer: without two kernel sockets the relay copies through its own large
// buffer, not io.Copy's 32 KiB default.
func TestRelayLargeBuffer(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	dst := &writeSizes{}
	n, err := relay(dst, &bigReads{r: bytes.NewReader(data)})
	if err != nil || n != int64(len(data)) || !bytes.Equal(dst.buf.Bytes(), data) {
		t.Fatalf("relayed %d bytes, %v", n, err)
	}
	if len(dst.sizes) == 0 || dst.sizes[0] != pipeBuffer {
		t.Fatalf("write sizes %v, want %d-byte writes", dst.sizes, pipeBuffer)
	}
}
