package tlspsk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// pair runs a client and server over loopback TCP and returns both ends after the handshake.
func pair(t *testing.T, ccfg, scfg Config) (*Conn, *Conn, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *Conn
		err error
	}
	sc := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sc <- res{nil, err}
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s := Server(c, scfg)
		sc <- res{s, s.Handshake()}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := Client(raw, ccfg)
	cerr := c.Handshake()
	s := <-sc
	t.Cleanup(func() { c.Close(); s.c.Close() })
	return c, s.c, cerr, s.err
}

func psk32(t testing.TB) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPremasterVector(t *testing.T) {
	shared, _ := hex.DecodeString("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	want := "0020" + strings.Repeat("00", 32) + "0020" + hex.EncodeToString(shared)
	if got := hex.EncodeToString(pskPremaster(shared)); got != want {
		t.Fatalf("premaster %s", got)
	}
}

// TestPRFVector is the widely circulated TLS 1.2 PRF (SHA-256) test vector.
func TestPRFVector(t *testing.T) {
	secret, _ := hex.DecodeString("9bbe436ba940f017b17652849a71db35")
	seed, _ := hex.DecodeString("a0ba9f936cda311827a6f796ffd5198c")
	want := "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
	if got := hex.EncodeToString(prf(suites[PSKWithAES128CBCSHA].prf, secret, "test label", seed, 100)); got != want {
		t.Fatalf("PRF\n got %s\nwant %s", got, want)
	}
}

func TestLoopbackEverySuite(t *testing.T) {
	key := psk32(t)
	for _, id := range DefaultSuites {
		t.Run(SuiteName(id), func(t *testing.T) {
			c, s, cerr, serr := pair(t, Config{PSK: key, Suites: []uint16{id}}, Config{PSK: key})
			if cerr != nil || serr != nil {
				t.Fatal(cerr, serr)
			}
			if c.Suite() != SuiteName(id) || s.Suite() != SuiteName(id) {
				t.Fatalf("negotiated %s/%s", c.Suite(), s.Suite())
			}
			big := make([]byte, 3*MaxPlaintext+123)
			rand.Read(big)
			go func() { c.Write(big); c.Write([]byte("end")) }()
			got := make([]byte, len(big)+3)
			if _, err := io.ReadFull(s, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(big)], big) || string(got[len(big):]) != "end" {
				t.Fatal("data corrupted client→server")
			}
			go s.Write([]byte("pong"))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
				t.Fatalf("server→client %q %v", buf, err)
			}
			c.Close()
			if _, err := s.Read(buf); !errors.Is(err, io.EOF) {
				t.Fatalf("close_notify not seen as EOF: %v", err)
			}
		})
	}
}

func TestLoopbackWrongPSK(t *testing.T) {
	for _, id := range DefaultSuites {
		_, _, cerr, serr := pair(t, Config{PSK: psk32(t), Suites: []uint16{id}}, Config{PSK: psk32(t)})
		if cerr == nil || serr == nil {
			t.Fatalf("%s: wrong PSK accepted: %v / %v", SuiteName(id), cerr, serr)
		}
		if !strings.Contains(serr.Error(), "wrong PSK") || !strings.Contains(cerr.Error(), "wrong PSK") {
			t.Fatalf("%s: unclear errors:\n client: %v\n server: %v", SuiteName(id), cerr, serr)
		}
	}
}

func TestIdentityAndSuiteMismatch(t *testing.T) {
	key := psk32(t)
	_, _, cerr, serr := pair(t, Config{PSK: key, Identity: "x"}, Config{PSK: key, Identity: "", CheckIdentity: true})
	var ae AlertError
	if !errors.As(cerr, &ae) || ae != 115 || serr == nil {
		t.Fatalf("identity: %v / %v", cerr, serr)
	}
	_, _, cerr, serr = pair(t, Config{PSK: key, Suites: []uint16{PSKWithAES128CBCSHA}}, Config{PSK: key, Suites: []uint16{PSKWithAES256GCMSHA384}})
	if !errors.As(cerr, &ae) || ae != 40 || !strings.Contains(serr.Error(), "no common") {
		t.Fatalf("suites: %v / %v", cerr, serr)
	}
}

// TestRecordTamperAndReplay: a flipped bit, a replayed record and a wrong record type all fail.
func TestRecordTamperAndReplay(t *testing.T) {
	for _, id := range DefaultSuites {
		s := suites[id]
		ck, _ := s.keyBlock(psk32(t)[:16], psk32(t), psk32(t))
		tx, _ := s.newProtection(ck)
		rx, _ := s.newProtection(ck)
		ct, _ := tx.seal(nil, recordApplicationData, []byte("payload"))
		for i := range ct {
			bad := append([]byte{}, ct...)
			bad[i] ^= 0x80
			r, _ := s.newProtection(ck)
			if _, err := r.open(recordApplicationData, bad); !errors.Is(err, errBadRecordMAC) {
				t.Fatalf("%s: flipped byte %d accepted", s.name, i)
			}
		}
		if _, err := rx.open(recordHandshake, append([]byte{}, ct...)); !errors.Is(err, errBadRecordMAC) {
			t.Fatalf("%s: record type not authenticated", s.name)
		}
		if _, err := rx.open(recordApplicationData, append([]byte{}, ct...)); !errors.Is(err, errBadRecordMAC) {
			t.Fatalf("%s: replay at the next sequence number accepted", s.name)
		}
	}
}

func TestHandshakeContextBounded(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := Client(a, Config{PSK: []byte("k")}).HandshakeContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent server: %v", err)
	}
}

// TestFullDuplex: both sides write 1 MiB while reading the other's 1 MiB, then one side closes
// while the other is blocked in Read.
func TestFullDuplex(t *testing.T) {
	key := psk32(t)
	for _, id := range []uint16{PSKWithAES256GCMSHA384, PSKWithAES256CBCSHA} {
		c, s, cerr, serr := pair(t, Config{PSK: key, Suites: []uint16{id}}, Config{PSK: key})
		if cerr != nil || serr != nil {
			t.Fatal(cerr, serr)
		}
		data := make([]byte, 1<<20)
		rand.Read(data)
		errc := make(chan error, 4)
		for _, end := range []*Conn{c, s} {
			go func() { _, err := end.Write(data); errc <- err }()
			go func() {
				got := make([]byte, len(data))
				_, err := io.ReadFull(end, got)
				if err == nil && !bytes.Equal(got, data) {
					err = errors.New("data corrupted")
				}
				errc <- err
			}()
		}
		for i := 0; i < 4; i++ {
			if err := <-errc; err != nil {
				t.Fatalf("%s: %v", SuiteName(id), err)
			}
		}
		blocked := make(chan error, 1)
		go func() { _, err := s.Read(make([]byte, 1)); blocked <- err }()
		time.Sleep(50 * time.Millisecond)
		c.Close()
		select {
		case err := <-blocked:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("blocked Read ended with %v, want EOF", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Read stayed blocked after the peer closed")
		}
	}
}

func TestIdentityBound(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	err := Client(a, Config{PSK: []byte("k"), Identity: strings.Repeat("x", maxIdentity+1)}).Handshake()
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized identity: %v", err)
	}
}
