package rsd_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/rsd/rsdtest"
	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// server accepts one connection on a fresh loopback listener and runs serve on it.
func server(t *testing.T, opts rsd.Options, serve func(ctx context.Context, c *rsd.Conn)) (addr string, conn <-chan *rsd.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan struct{})
	ch := make(chan *rsd.Conn, 1)
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c, err := rsd.Server(ctx, nc, opts)
		if err != nil {
			t.Errorf("server setup: %v", err)
			return
		}
		ch <- c
		serve(ctx, c)
		c.Close()
		<-c.Done()
	}()
	return ln.Addr().String(), ch
}

// serveHandshake is a device RSD endpoint: setup, Handshake, RST_STREAM(1), then hold.
func serveHandshake(ctx context.Context, c *rsd.Conn) {
	go func() {
		for {
			if _, err := c.Receive(ctx); err != nil {
				return
			}
		}
	}()
	if err := rsd.ServeHandshake(ctx, c, testHandshake(), true); err != nil {
		return
	}
	select {
	case <-ctx.Done():
	case <-c.Done():
	}
}

func dial(t *testing.T, addr string) *rsdtest.Client {
	t.Helper()
	c, err := rsdtest.Dial(addr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClientOrderMatrix runs every known client's setup order against the server, each 20
// times: the server's stream-1 setup, its stream-3 setup, the Handshake and only then
// RST_STREAM(1), with no reset before the Handshake and nothing else reset.
func TestClientOrderMatrix(t *testing.T) {
	for _, o := range rsdtest.Orders {
		t.Run(string(o), func(t *testing.T) {
			for i := range 20 {
				addr, _ := server(t, rsd.Options{}, serveHandshake)
				c := dial(t, addr)
				h, err := c.Handshake(o, true)
				if err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				if h.UDID() != "00008101-000A1B2C3D4E001E" {
					t.Fatalf("run %d: handshake UDID %q", i, h.UDID())
				}
				if len(c.Resets) != 1 {
					t.Fatalf("run %d: resets %v, want only RST_STREAM(1)", i, c.Resets)
				}
				c.Close()
			}
		})
	}
}

// TestZeroInitialWindow: a peer that announces INITIAL_WINDOW_SIZE=0 gets SETTINGS ACK and
// PING answers while the server's setup waits, and everything once it opens its windows.
func TestZeroInitialWindow(t *testing.T) {
	addr, _ := server(t, rsd.Options{}, serveHandshake)
	c := dial(t, addr)
	if err := c.Preface(rsdtest.Settings{ZeroWindow: true}); err != nil {
		t.Fatal(err)
	}
	fr := c.Framer()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true})
	for i := range 3 {
		if err := c.Ping([8]byte{'z', byte(i)}); err != nil {
			t.Fatalf("PING %d not answered while the server waits for window: %v", i, err)
		}
	}
	if n := c.Frames[http2.FrameData]; n != 0 {
		t.Fatalf("server sent %d DATA frames into a zero window", n)
	}
	fr.WriteSettingsAck()
	fr.WriteWindowUpdate(1, 1<<20)
	fr.WriteWindowUpdate(3, 1<<20)
	if _, err := c.ReadHandshake(true); err != nil {
		t.Fatal(err)
	}
}

// TestReadLoopNeverWaitsOnWrites: while the server is stuck writing a message the peer does
// not read, it still receives the peer's messages and answers its PING.
func TestReadLoopNeverWaitsOnWrites(t *testing.T) {
	big := bytes.Repeat([]byte("slow reader "), 8<<20/12)
	got := make(chan int, 1)
	sendErr := make(chan error, 1)
	addr, _ := server(t, rsd.Options{}, func(ctx context.Context, c *rsd.Conn) {
		go func() { sendErr <- c.Post(ctx, xpc.NewDict("blob", big)) }()
		n := 0
		for n < 50 {
			in, err := c.Receive(ctx)
			if err != nil {
				break
			}
			if d, ok := in.Msg.Body.(*xpc.Dict); ok && d.Len() > 0 {
				n++
			}
		}
		got <- n
		<-ctx.Done()
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// A fixed 2 MiB receive buffer (tiny ones stall loopback TCP): with the sender's it holds
	// less than the 8 MiB message, so the server's write blocks until the peer reads.
	nc.(*net.TCPConn).SetReadBuffer(1 << 20)
	c := rsdtest.New(nc, 20*time.Second)
	t.Cleanup(func() { c.Close() })
	// A 16 MiB window, as pymobiledevice3 announces: only TCP holds the server back.
	if err := c.Setup(rsdtest.Devicectl, rsdtest.Settings{InitialWindow: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	c.Framer().WriteWindowUpdate(0, 16<<20)
	for i := range 50 {
		if err := c.Send(1, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: uint64(i + 1), Body: xpc.NewDict("n", uint64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if n := <-got; n != 50 {
		t.Fatalf("server received %d of 50 messages while its write was stuck", n)
	}
	if err := c.CheckSetup(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping([8]byte{'p'}); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(1)
	if err != nil {
		t.Fatalf("%v (frames %v, credit %v)", err, c.Frames, c.WindowCredit)
	}
	if b, _ := m.Body.(*xpc.Dict).Get("blob"); !bytes.Equal(b.([]byte), big) {
		t.Fatal("large message changed in transit")
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
}

// TestSlowReaderOfLargeMessage: a 1 MiB message reaches a peer that reads a frame at a time
// with pauses and a 1 MiB window, intact.
func TestSlowReaderOfLargeMessage(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5, 0x5a, 1, 2}, 1<<20/4)
	addr, _ := server(t, rsd.Options{}, func(ctx context.Context, c *rsd.Conn) {
		c.Post(ctx, xpc.NewDict("blob", big))
		<-ctx.Done()
	})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := rsdtest.New(nc, 30*time.Second)
	t.Cleanup(func() { c.Close() })
	if err := c.Setup(rsdtest.Devicectl, rsdtest.Settings{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSetup(); err != nil {
		t.Fatal(err)
	}
	for c.Pending(1) == 0 {
		if _, err := c.ReadFrame(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if c.Frames[http2.FrameData]%16 == 0 {
			// The peer grants credit as it reads, in pieces, as a slow consumer would.
			c.Framer().WriteWindowUpdate(1, 16384*16)
			c.Framer().WriteWindowUpdate(0, 16384*16)
		}
	}
	m, _ := c.Next(1)
	if b, _ := m.Body.(*xpc.Dict).Get("blob"); !bytes.Equal(b.([]byte), big) {
		t.Fatal("1 MiB message changed in transit")
	}
}

// TestCreditFollowsTheConsumer: no WINDOW_UPDATE for data nobody has taken; batches of credit
// once it is taken, far fewer than one per DATA frame.
func TestCreditFollowsTheConsumer(t *testing.T) {
	take := make(chan struct{})
	taken := make(chan int, 1)
	addr, _ := server(t, rsd.Options{}, func(ctx context.Context, c *rsd.Conn) {
		select {
		case <-take:
		case <-ctx.Done():
			return
		}
		n := 0
		for {
			in, err := c.Receive(ctx)
			if err != nil {
				break
			}
			if d, ok := in.Msg.Body.(*xpc.Dict); ok && d.Len() > 0 {
				if n++; n == 60 {
					break
				}
			}
		}
		taken <- n
		<-ctx.Done()
	})
	c := dial(t, addr)
	if err := c.Setup(rsdtest.Devicectl, rsdtest.Settings{}); err != nil {
		t.Fatal(err)
	}
	msg := func(i int) []byte {
		b, _ := (&xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: uint64(i + 1), Body: xpc.NewDict("pad", bytes.Repeat([]byte{byte(i)}, 16000))}).Encode()
		return b
	}
	// 60 messages of ~16 KB: just under the 1 MiB windows, and nobody takes them yet.
	sent := 0
	for i := range 60 {
		b := msg(i)
		if err := c.SendFlow(1, b); err != nil {
			t.Fatal(err)
		}
		sent += len(b)
	}
	// Two PING round trips: credit queued before the first is on the wire before the second ACK.
	c.Ping([8]byte{1})
	c.Ping([8]byte{2})
	if c.WindowCredit[1] != 0 {
		t.Fatalf("server returned %d bytes of stream credit for messages nobody took", c.WindowCredit[1])
	}
	close(take)
	if n := <-taken; n != 60 {
		t.Fatalf("consumer took %d messages", n)
	}
	c.Ping([8]byte{3})
	c.Ping([8]byte{4})
	if got := int(c.WindowCredit[1]); got < sent-rsd.InitialWindowSize/4 || got > sent {
		t.Fatalf("stream credit %d after the consumer took %d bytes", got, sent)
	}
	if n := c.Frames[http2.FrameWindowUpdate]; n > 2*(sent/(rsd.InitialWindowSize/4))+2 {
		t.Fatalf("%d WINDOW_UPDATE frames for %d DATA frames: credit is not batched", n, c.Frames[http2.FrameData])
	}
}

// TestPeerBoundsEnforced: overrunning a window, opening more streams than allowed and
// announcing an oversized message each end or refuse what they should.
func TestPeerBoundsEnforced(t *testing.T) {
	t.Run("overrun", func(t *testing.T) {
		ended := make(chan error, 1)
		addr, _ := server(t, rsd.Options{}, func(ctx context.Context, c *rsd.Conn) {
			select {
			case <-c.Done():
				ended <- c.Err()
			case <-ctx.Done():
				ended <- ctx.Err()
			}
		})
		c := dial(t, addr)
		c.Setup(rsdtest.Devicectl, rsdtest.Settings{})
		b, _ := (&xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: 1, Body: xpc.NewDict("pad", make([]byte, 16000))}).Encode()
		for range 70 { // ~1.1 MiB into a 1 MiB window that nobody drains
			if c.Framer().WriteData(1, false, b) != nil {
				break
			}
		}
		if err := <-ended; err == nil || !strings.Contains(err.Error(), "FLOW_CONTROL_ERROR") {
			t.Fatalf("connection ended with %v, want a flow-control error", err)
		}
	})
	t.Run("streams", func(t *testing.T) {
		addr, _ := server(t, rsd.Options{}, serveHandshake)
		c := dial(t, addr)
		c.Setup(rsdtest.Devicectl, rsdtest.Settings{})
		for id := uint32(5); id < 5+2*rsd.MaxConcurrentStreams; id += 2 {
			c.Framer().WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true})
		}
		refused := 0
		for refused == 0 {
			if _, err := c.ReadFrame(); err != nil {
				t.Fatal(err)
			}
			for _, r := range c.Resets {
				if r.Code == http2.ErrCodeRefusedStream {
					refused++
				}
			}
		}
		c.Ping([8]byte{9})
		refused = 0
		for _, r := range c.Resets {
			if r.Code == http2.ErrCodeRefusedStream {
				refused++
			}
		}
		// Streams 1 and 3 plus 98 of the 100 opened fit; two are refused.
		if refused != 2 {
			t.Fatalf("%d streams refused, want 2 (resets %v)", refused, c.Resets)
		}
	})
	t.Run("message size", func(t *testing.T) {
		ended := make(chan error, 1)
		addr, _ := server(t, rsd.Options{MaxMessageSize: 1 << 16}, func(ctx context.Context, c *rsd.Conn) {
			<-c.Done()
			ended <- c.Err()
		})
		c := dial(t, addr)
		c.Setup(rsdtest.Devicectl, rsdtest.Settings{})
		b, _ := (&xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: 1, Body: xpc.NewDict("pad", make([]byte, 1<<17))}).Encode()
		c.Framer().WriteData(1, false, b[:1000]) // only the head: the size alone is refused
		if err := <-ended; err == nil || !strings.Contains(err.Error(), "exceeds") {
			t.Fatalf("connection ended with %v, want the message-size limit", err)
		}
	})
}

// TestHandshakeWaitsForReplyChannel: a client that opens only stream 1 gets its two stream-1
// setup messages but no Handshake and no reset, and the server's wait is bounded.
func TestHandshakeWaitsForReplyChannel(t *testing.T) {
	served := make(chan error, 1)
	addr, _ := server(t, rsd.Options{}, func(ctx context.Context, c *rsd.Conn) {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		served <- rsd.ServeHandshake(hctx, c, testHandshake(), true)
	})
	c := dial(t, addr)
	c.Preface(rsdtest.Settings{})
	c.Framer().WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true})
	b, _ := (&xpc.Message{Flags: xpc.FlagAlwaysSet, Body: &xpc.Dict{}}).Encode()
	c.Framer().WriteData(1, false, b)
	for range 2 {
		if _, err := c.Next(1); err != nil {
			t.Fatal(err)
		}
	}
	err := <-served
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ServeHandshake without stream 3: %v", err)
	}
	c.Ping([8]byte{7})
	if c.Pending(1) != 0 || len(c.Resets) != 0 {
		t.Fatalf("server sent %d more stream-1 messages and resets %v before stream 3 opened", c.Pending(1), c.Resets)
	}
}
