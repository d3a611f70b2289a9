package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/iosmux/iosmux/tunnel"
)

// probeTunnel is a Tunnel whose Ping fails with a fixed error and whose RSD port is a
// loopback listener, counting the connects it receives.
type probeTunnel struct {
	pingErr error
	ln      net.Listener
}

func (p *probeTunnel) ServerAddress() netip.Addr { return netip.MustParseAddr("127.0.0.1") }
func (p *probeTunnel) RSDPort() int              { return p.ln.Addr().(*net.TCPAddr).Port }
func (p *probeTunnel) MTU() int                  { return 1280 }
func (p *probeTunnel) Interface() string         { return "iosmux-test" }
func (p *probeTunnel) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
func (p *probeTunnel) Done() <-chan struct{}      { return nil }
func (p *probeTunnel) Err() error                 { return nil }
func (p *probeTunnel) Close() error               { return nil }
func (p *probeTunnel) Bytes() (uint64, uint64)    { return 0, 0 }
func (p *probeTunnel) Ping(context.Context) error { return p.pingErr }

// TestPingFallsBackWithoutRawSocket: a kernel tunnel that may not open a raw ICMPv6 socket
// (CAP_NET_ADMIN without CAP_NET_RAW) is probed by a TCP connect to its RSD port instead of
// failing every probe; any other ping error still fails the probe.
func TestPingFallsBackWithoutRawSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &probeTunnel{pingErr: fmt.Errorf("tunnel: ping: %w", tunnel.ErrPingNotPermitted), ln: ln}
	if err := Ping(ctx, p); err != nil {
		t.Fatalf("probe without a raw socket: %v", err)
	}
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the fallback did not connect to the RSD port " + strconv.Itoa(p.RSDPort()))
	}
	p.pingErr = errors.New("no echo reply")
	if err := Ping(ctx, p); err == nil {
		t.Fatal("a failed echo passed the probe")
	}
}
