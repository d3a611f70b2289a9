package rsd

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/xpc"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a connected client and server Conn over loopback TCP.
func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := Server(ctx, nc, Options{})
		ch <- res{c, err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := Client(ctx, nc, Options{})
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
func drain(c *Conn) {
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
		go func() { errc <- ServeHandshake(ctx, srv, testHandshake(), true) }()
		var host *xpc.UUID
		if sendHost {
			host = &xpc.UUID{1, 2, 3}
		}
		h, err := ReadHandshake(ctx, cl, host)
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
func echo(srv *Conn) {
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

// TestServerAcceptsCDSBytes drives the server with the exact client bytes of remotexpc.md §7.1,
// in go-ios's wait-for-each-reply order, and checks what it sends back.
func TestServerAcceptsCDSBytes(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		srv, err := Server(ctx, nc, Options{})
		if err != nil {
			return
		}
		drain(srv)
		ServeHandshake(ctx, srv, testHandshake(), true)
		<-ctx.Done()
		srv.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	hexes := []string{
		"505249202a20485454502f322e300d0a0d0a534d0d0a0d0a",
		"00000c040000000000" + "000300000064" + "000400100000",
		"000004080000000000" + "000f0001",
	}
	for _, h := range hexes {
		nc.Write(unhex(t, h))
	}
	fr := http2.NewFramer(nc, nc)
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		t.Fatalf("first server frame %v, want SETTINGS", f)
	}
	nc.Write(unhex(t, "000000010400000001"))
	nc.Write(unhex(t, "00002c000000000001"+"920bb02901000000140000000000000000000000000000004237134205000000"+"00f000000400000000000000"))
	msgs := map[uint32][]*xpc.Message{}
	next := func(stream uint32) *xpc.Message {
		t.Helper()
		bufs := map[uint32][]byte{}
		for {
			if len(msgs[stream]) > 0 {
				m := msgs[stream][0]
				msgs[stream] = msgs[stream][1:]
				return m
			}
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("waiting on stream %d: %v", stream, err)
			}
			if df, ok := f.(*http2.DataFrame); ok {
				bufs[df.StreamID] = append(bufs[df.StreamID], df.Data()...)
				for b := bufs[df.StreamID]; len(b) >= 24; b = bufs[df.StreamID] {
					h, err := xpc.ParseHeader(b)
					if err != nil || len(b) < h.Size() {
						break
					}
					m, err := xpc.DecodeMessage(b[:h.Size()])
					if err != nil {
						t.Fatal(err)
					}
					msgs[df.StreamID] = append(msgs[df.StreamID], m)
					bufs[df.StreamID] = b[h.Size():]
				}
			}
		}
	}
	if m := next(1); m.Flags != xpc.FlagAlwaysSet {
		t.Fatalf("first stream-1 message %v", m.Flags)
	}
	nc.Write(unhex(t, "000000010400000003"))
	nc.Write(unhex(t, "000018000000000003"+"920bb02901004000"+"00000000000000000000000000000000"))
	if m := next(3); m.Flags != xpc.FlagAlwaysSet|xpc.FlagOpensReplyChannel {
		t.Fatalf("first stream-3 message %v", m.Flags)
	}
	nc.Write(unhex(t, "000018000000000001"+"920bb02901020000"+"00000000000000000000000000000000"))
	if m := next(1); m.Flags != xpc.FlagAlwaysSet|xpc.TypePing {
		t.Fatalf("second stream-1 message %v", m.Flags)
	}
	m := next(1)
	if _, err := ParseHandshake(m.Body.(*xpc.Dict)); err != nil || m.Flags != xpc.FlagAlwaysSet|xpc.TypeMsg {
		t.Fatalf("third stream-1 message %v: %v", m.Flags, err)
	}
}

func TestServerRejectsBadPreface(t *testing.T) {
	a, b := net.Pipe()
	go func() { a.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); a.Close() }()
	if _, err := Server(context.Background(), b, Options{SetupTimeout: time.Second}); err == nil {
		t.Fatal("server accepted an HTTP/1 request")
	}
}

func unhex(t *testing.T, s string) []byte {
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

// TestServerAcceptsEveryClientOrder sends the setup frames in the orders of remotexpc.md §7.1
// (devicectl/pmd3/appium, idevice, Frida), all at once without waiting, plus appium's
// unsolicited SETTINGS ACK, and expects the stream-3 HEADER and the Handshake each time.
func TestServerAcceptsEveryClientOrder(t *testing.T) {
	const (
		h1    = "000000010400000001"
		h3    = "000000010400000003"
		d1    = "00002c000000000001" + "920bb02901000000140000000000000000000000000000004237134205000000" + "00f000000400000000000000"
		ping  = "000018000000000001" + "920bb02901020000" + "00000000000000000000000000000000"
		open3 = "000018000000000003" + "920bb02901004000" + "00000000000000000000000000000000"
		ack   = "000000040100000000"
	)
	orders := map[string][]string{
		"devicectl": {h1, d1, h3, ping, open3},
		"idevice":   {h1, d1, h3, open3, ping},
		"frida":     {h1, d1, ping, h3, open3},
		"appium":    {h1, d1, h3, ping, open3, ack},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				srv, err := Server(ctx, nc, Options{})
				if err != nil {
					return
				}
				drain(srv)
				ServeHandshake(ctx, srv, testHandshake(), true)
				<-ctx.Done()
				srv.Close()
			}()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			all := "505249202a20485454502f322e300d0a0d0a534d0d0a0d0a" + "00000c040000000000000300000064000400100000" + "00000408000000000000" + "0f0001"
			for _, f := range order {
				all += f
			}
			nc.Write(unhex(t, all))
			fr := http2.NewFramer(nc, nc)
			bufs := map[uint32][]byte{}
			var gotReplyHeader, gotHandshake bool
			for !gotReplyHeader || !gotHandshake {
				f, err := fr.ReadFrame()
				if err != nil {
					t.Fatalf("reply header %v, handshake %v: %v", gotReplyHeader, gotHandshake, err)
				}
				df, ok := f.(*http2.DataFrame)
				if !ok {
					continue
				}
				bufs[df.StreamID] = append(bufs[df.StreamID], df.Data()...)
				for b := bufs[df.StreamID]; len(b) >= 24; b = bufs[df.StreamID] {
					h, err := xpc.ParseHeader(b)
					if err != nil || len(b) < h.Size() {
						break
					}
					m, err := xpc.DecodeMessage(b[:h.Size()])
					if err != nil {
						t.Fatal(err)
					}
					bufs[df.StreamID] = b[h.Size():]
					if df.StreamID == ReplyChannel && m.Flags.Has(xpc.FlagOpensReplyChannel) {
						gotReplyHeader = true
					}
					if d, ok := m.Body.(*xpc.Dict); ok && df.StreamID == RootChannel {
						if _, err := ParseHandshake(d); err == nil {
							gotHandshake = true
						}
					}
				}
			}
		})
	}
}
