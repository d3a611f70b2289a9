package quictunnel_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/quictunnel"
)

// failAfter bounds every wait, so a broken test fails instead of hanging.
const failAfter = 30 * time.Second

var keys = map[string]*rsa.PrivateKey{}

// clientKey returns a cached RSA key per name (generating them is slow under -race).
func clientKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	if k := keys[name]; k != nil {
		return k
	}
	k, err := quictunnel.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	if k.N.BitLen() != quictunnel.ClientKeyBits || k.E != 65537 {
		t.Fatalf("client key: %d bits, e=%d", k.N.BitLen(), k.E)
	}
	keys[name] = k
	return k
}

func spki(t testing.TB, k *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := quictunnel.SPKI(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// connect listens for key's SPKI, dials with key and returns both ends.
func connect(t testing.TB, key *rsa.PrivateKey) (client, server *quictunnel.Conn) {
	t.Helper()
	ln, err := quictunnel.Listen("127.0.0.1:0", spki(t, key), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	type res struct {
		c   *quictunnel.Conn
		err error
	}
	acc := make(chan res, 1)
	go func() {
		c, err := ln.Accept(ctx)
		acc <- res{c, err}
	}()
	client, err = quictunnel.Dial(ctx, ln.Addr().String(), key)
	if err != nil {
		t.Fatal(err)
	}
	// The server sees the stream once the client writes on it: the CDTunnel request.
	hs := make(chan error, 1)
	go func() {
		_, err := tunnel.ClientHandshake(ctx, client.Stream(), quictunnel.RequestMTU)
		hs <- err
	}()
	r := <-acc
	if r.err != nil {
		t.Fatal(r.err)
	}
	server = r.c
	t.Cleanup(func() { client.Close(); server.Close() })
	if _, err := tunnel.ServerHandshake(ctx, server.Stream(), func(mtu int) (*tunnel.Params, error) {
		if mtu != quictunnel.RequestMTU {
			t.Errorf("requested MTU %d", mtu)
		}
		return tunnel.RandomParams(min(mtu, server.MaxDatagram()), 1), nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(server.PeerSPKI(), spki(t, key)) {
		t.Fatal("server sees another client key")
	}
	if !bytes.Equal(client.PeerSPKI(), ln.PublicKey()) {
		t.Fatal("client sees another device key than the listener's")
	}
	return client, server
}

// packet is a valid IPv6 packet of n bytes (n ≥ 40) with payload byte b.
func packet(n int, b byte) []byte {
	p := bytes.Repeat([]byte{b}, n)
	copy(p, make([]byte, 40))
	p[0] = 0x60
	p[4], p[5] = byte((n-40)>>8), byte(n-40)
	p[6] = 59 // no next header
	return p
}

func readDatagram(t *testing.T, c *quictunnel.Conn, size int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failAfter))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, size)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestHandshakeAndDatagrams: the CDTunnel handshake runs on the stream, the client's first
// datagram is the 1024-byte padding, and datagrams go both ways, one packet each.
func TestHandshakeAndDatagrams(t *testing.T) {
	c, s := connect(t, clientKey(t, "a"))
	if got := readDatagram(t, s, 2048); !bytes.Equal(got, bytes.Repeat([]byte{'x'}, quictunnel.PaddingDatagramLen)) {
		t.Fatalf("first datagram: %d bytes %q…", len(got), got[:min(len(got), 8)])
	}
	max := c.MaxDatagram()
	if max < 1280 || max > quictunnel.MaxDatagramFrameSize {
		t.Fatalf("max datagram %d", max)
	}
	for _, n := range []int{40, 1280, max} {
		up := packet(n, 'u')
		if _, err := c.Write(up); err != nil {
			t.Fatal(err)
		}
		if got := readDatagram(t, s, 16<<10); !bytes.Equal(got, up) {
			t.Fatalf("up %d: got %d bytes", n, len(got))
		}
		down := packet(n, 'd')
		if _, err := s.Write(down); err != nil {
			t.Fatal(err)
		}
		if got := readDatagram(t, c, 16<<10); !bytes.Equal(got, down) {
			t.Fatalf("down %d: got %d bytes", n, len(got))
		}
	}
	if sd, rd := c.Dropped(); sd != 0 || rd != 0 {
		t.Fatalf("dropped %d/%d", sd, rd)
	}
}

// TestWrongKeyRefused: a client whose certificate key is not the createListener key gets no
// connection: its dial or its first exchange fails, and the listener never accepts.
func TestWrongKeyRefused(t *testing.T) {
	ln, err := quictunnel.Listen("127.0.0.1:0", spki(t, clientKey(t, "a")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 1)
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	go func() {
		c, err := ln.Accept(actx)
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := quictunnel.Dial(ctx, ln.Addr().String(), clientKey(t, "b"))
	if err == nil {
		// TLS 1.3: the client may finish before the server has judged its certificate.
		_, err = tunnel.ClientHandshake(ctx, c.Stream(), quictunnel.RequestMTU)
		c.Close()
	}
	t.Logf("wrong key: %v", err)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong key: %v", err)
	}
	acancel()
	if err := <-accepted; err == nil {
		t.Fatal("the listener accepted a client with the wrong key")
	}
	if _, err := quictunnel.Listen("127.0.0.1:0", []byte("not a key"), nil); err == nil {
		t.Fatal("Listen took a malformed client key")
	}
}

// TestOversizeDatagramDropped: a datagram too large for the path, or for the bound, is dropped
// with an error wrapping tunnel.ErrPacketDropped and the connection goes on; a received
// datagram larger than the reader's buffer is dropped, not cut.
func TestOversizeDatagramDropped(t *testing.T) {
	c, s := connect(t, clientKey(t, "a"))
	readDatagram(t, s, 2048) // the padding
	for _, n := range []int{c.MaxDatagram() + 1, quictunnel.MaxDatagramFrameSize + 1} {
		if _, err := c.Write(packet(n, 'o')); !errors.Is(err, tunnel.ErrPacketDropped) {
			t.Fatalf("write %d: %v", n, err)
		}
	}
	if sd, _ := c.Dropped(); sd != 2 {
		t.Fatalf("sent dropped %d", sd)
	}
	if _, err := s.Write(packet(1000, 'b')); err != nil {
		t.Fatal(err)
	}
	small := packet(100, 's')
	if _, err := s.Write(small); err != nil {
		t.Fatal(err)
	}
	if got := readDatagram(t, c, 500); !bytes.Equal(got, small) {
		t.Fatalf("got %d bytes, want the 100-byte datagram after the dropped one", len(got))
	}
	if _, rd := c.Dropped(); rd != 1 {
		t.Fatalf("received dropped %d", rd)
	}
	ok := packet(200, 'k')
	if _, err := c.Write(ok); err != nil {
		t.Fatal(err)
	}
	if got := readDatagram(t, s, 2048); !bytes.Equal(got, ok) {
		t.Fatal("the connection did not survive the drops")
	}
}

// TestReadDeadline: a Read waiting for a datagram ends at the deadline; the peer's orderly
// close ends it with io.EOF.
func TestReadDeadline(t *testing.T) {
	c, s := connect(t, clientKey(t, "a"))
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 2048)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	s.Close()
	c.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := c.Read(make([]byte, 2048)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v", err)
	}
}

// The Conn is a net.Conn, as tunnel.Start takes.
var _ net.Conn = (*quictunnel.Conn)(nil)
