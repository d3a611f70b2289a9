package rsd_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a connected client and server rsd.Conn over loopback TCP.
func pair(t *testing.T) (*rsd.Conn, *rsd.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *rsd.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := rsd.Server(ctx, nc, rsd.Options{})
		ch <- res{c, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := rsd.Client(ctx, nc, rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { cl.Close(); r.c.Close(); <-cl.Done(); <-r.c.Done() })
	return cl, r.c
}

func testHandshake() *xpc.Dict {
	u, _ := xpc.ParseUUID("6e5c4b0a-1111-4222-8333-944455556666")
	return xpc.NewDict(
		"MessageType", "Handshake",
		"MessagingProtocolVersion", uint64(5),
		"Services", xpc.NewDict(
			"com.apple.mobile.lockdown.remote.trusted", xpc.NewDict(
				"Entitlement", "com.apple.mobile.lockdown.remote.trusted", "Port", "49152",
				"Properties", xpc.NewDict("UsesRemoteXPC", false)),
			"com.apple.coredevice.deviceinfo", xpc.NewDict(
				"Entitlement", "com.apple.private.CoreDevice.canInstallCustomerContent", "Port", "49153",
				"Properties", xpc.NewDict("UsesRemoteXPC", true, "ServiceVersion", int64(1))),
		),
		"Properties", xpc.NewDict("UniqueDeviceID", "00008101-000A1B2C3D4E001E", "ProductType", "iPhone13,2"),
		"UUID", u,
	)
}

// drain consumes a server's incoming messages until it closes.
func drain(c *rsd.Conn) {
	go func() {
		for {
			if _, err := c.Receive(context.Background()); err != nil {
				return
			}
		}
	}()
}

func TestHandshakeBothClientStyles(t *testing.T) {
	for _, sendHost := range []bool{false, true} {
		cl, srv := pair(t)
		drain(srv)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errc := make(chan error, 1)
		go func() { errc <- rsd.ServeHandshake(ctx, srv, testHandshake(), true) }()
		var host *xpc.UUID
		if sendHost {
			host = &xpc.UUID{1, 2, 3}
		}
		h, err := rsd.ReadHandshake(ctx, cl, host)
		cancel()
		if err != nil {
			t.Fatalf("sendHost=%v: %v", sendHost, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if h.UDID() != "00008101-000A1B2C3D4E001E" || len(h.Services) != 2 {
			t.Fatalf("handshake %+v", h)
		}
		s, ok := h.Service("com.apple.coredevice.deviceinfo")
		if !ok || s.Port != 49153 || !s.UsesRemoteXPC || s.ServiceVersion != 1 {
			t.Fatalf("service %+v", s)
		}
		if s, _ := h.Service("com.apple.mobile.lockdown.remote.trusted"); s.UsesRemoteXPC || s.ServiceVersion != -1 {
			t.Fatalf("lockdown service %+v", s)
		}
	}
}

// echo serves requests on srv, replying with the request body.
func echo(srv *rsd.Conn) {
	go func() {
		for {
			in, err := srv.Receive(context.Background())
			if err != nil {
				return
			}
			if in.Msg.Flags.Has(xpc.FlagWantsReply) {
				body, _ := in.Msg.Body.(*xpc.Dict)
				go srv.Reply(context.Background(), in.Msg, body)
			}
		}
	}()
}

func TestManyConcurrentRequests(t *testing.T) {
	cl, srv := pair(t)
	echo(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cl.Request(ctx, xpc.NewDict("n", uint64(i)))
			if err != nil {
				errs <- err
				return
			}
			if n, _ := r.Body.(*xpc.Dict).Uint64("n"); n != uint64(i) || !r.Flags.Has(xpc.FlagIsReply) {
				t.Errorf("request %d got reply %d flags %v", i, n, r.Flags)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestTransferLargerThanWindow(t *testing.T) {
	cl, srv := pair(t)
	echo(srv)
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<20/16) // 5 MiB, five windows
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 {
		r, err := cl.Request(ctx, xpc.NewDict("blob", big))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := r.Body.(*xpc.Dict).Get("blob")
		if !bytes.Equal(got.([]byte), big) {
			t.Fatal("blob changed in transit")
		}
	}
}

// Client setup frames of remotexpc.md §7.1, in hex.
const (
	prefaceHex  = "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a"
	settingsHex = "00000c040000000000" + "000300000064" + "000400100000"
	windowHex   = "000004080000000000" + "000f0001"
	h1Hex       = "000000010400000001"
	h3Hex       = "000000010400000003"
	d1Hex       = "00002c000000000001" + "920bb02901000000140000000000000000000000000000004237134205000000" + "00f000000400000000000000"
	pingHex     = "000018000000000001" + "920bb02901020000" + "00000000000000000000000000000000"
	open3Hex    = "000018000000000003" + "920bb02901004000" + "00000000000000000000000000000000"
	ackHex      = "000000040100000000"
)

// TestServerAcceptsCDSBytes drives the server with the exact client bytes of remotexpc.md §7.1,
// in go-ios's wait-for-each-reply order, reading every frame it sends back.
func TestServerAcceptsCDSBytes(t *testing.T) {
	addr, _ := server(t, rsd.Options{}, serveHandshake)
	c := dial(t, addr)
	c.Write(unhex(t, prefaceHex+settingsHex+windowHex))
	if f, err := c.ReadFrame(); err != nil {
		t.Fatal(err)
	} else if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("first server frame is %v, not SETTINGS", f.Header())
	}
	c.Write(unhex(t, ackHex+h1Hex+d1Hex))
	if m, err := c.Next(1); err != nil || m.Flags != xpc.FlagAlwaysSet {
		t.Fatalf("first stream-1 message %v: %v", m, err)
	}
	c.Write(unhex(t, h3Hex+open3Hex))
	if m, err := c.Next(3); err != nil || m.Flags != xpc.FlagAlwaysSet|xpc.FlagOpensReplyChannel {
		t.Fatalf("first stream-3 message %v: %v", m, err)
	}
	c.Write(unhex(t, pingHex))
	if m, err := c.Next(1); err != nil || m.Flags != xpc.FlagAlwaysSet|xpc.TypePing {
		t.Fatalf("second stream-1 message %v: %v", m, err)
	}
	m, err := c.Next(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsd.ParseHandshake(m.Body.(*xpc.Dict)); err != nil || m.Flags != xpc.FlagAlwaysSet|xpc.TypeMsg {
		t.Fatalf("third stream-1 message %v: %v", m.Flags, err)
	}
	if err := c.ExpectReset(1, http2.ErrCodeNo); err != nil {
		t.Fatal(err)
	}
}

func TestServerRejectsBadPreface(t *testing.T) {
	a, b := net.Pipe()
	go func() { a.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); a.Close() }()
	if _, err := rsd.Server(context.Background(), b, rsd.Options{SetupTimeout: time.Second}); err == nil {
		t.Fatal("server accepted an HTTP/1 request")
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		var v byte
		for _, ch := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= byte(ch - '0')
			case ch >= 'a' && ch <= 'f':
				v |= byte(ch - 'a' + 10)
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		b[i] = v
	}
	return b
}
