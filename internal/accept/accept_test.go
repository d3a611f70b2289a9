package accept

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first n accepts with EMFILE, as a TCP listener does when the
// process is out of file descriptors, then accepts normally.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptErrorsDoNotKillTheListener: EMFILE on accept pauses and retries; the endpoint shows
// as failing meanwhile and serves connections again afterwards.
func TestAcceptErrorsDoNotKillTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(8)
	g := New(context.Background(), nil)
	defer g.Close()
	served := make(chan struct{}, 1)
	g.Serve("test", fl, func(ctx context.Context, nc net.Conn) {
		served <- struct{}{}
	})
	// While it fails, Failing names the endpoint and the cause.
	for deadline := time.Now().Add(10 * time.Second); len(g.Failing()) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("failing accepts never showed in Failing")
		}
	}
	if f := g.Failing()[0]; f.Endpoint != "test" || f.Err == nil {
		t.Fatalf("failure %+v", f)
	}
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		t.Fatal("the listener stopped serving after EMFILE")
	}
	if f := g.Failing(); len(f) != 0 {
		t.Fatalf("still failing after a successful accept: %+v", f)
	}
}

// TestCloseStopsRetrying: a group closed while its listener is failing returns promptly.
func TestCloseStopsRetrying(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(1 << 30)
	g := New(context.Background(), nil)
	g.Serve("test", fl, func(context.Context, net.Conn) {})
	for len(g.Failing()) == 0 {
		time.Sleep(time.Millisecond)
	}
	g.Close() // waits for the accept goroutine: a hang here fails the test by timeout
}
