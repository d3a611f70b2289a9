package quictunnel_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/quictunnel"
	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// quicPair is a host tunnel over QUIC and the device's side (a gVisor stack, as in package sim).
type quicPair struct {
	host, dev *tunnel.Tunnel
	devStack  *tunnel.UserspaceDevice
	params    *tunnel.Params
}

// devResult is the device's side once its tunnel runs.
type devResult struct {
	t     *tunnel.Tunnel
	stack *tunnel.UserspaceDevice
	p     *tunnel.Params
	err   error
}

// startQUICPair connects over QUIC and starts both tunnels; the host's device comes from
// backend. Tunnels close at the test's end.
func startQUICPair(t testing.TB, backend tunnel.Backend) (*quicPair, error) {
	c, devc, err := dialQUIC(t)
	if err != nil {
		return nil, err
	}
	return startHost(t, c, devc, backend)
}

// dialQUIC connects over QUIC (in the caller's network namespace) and runs the device's side
// in the background.
func dialQUIC(t testing.TB) (*quictunnel.Conn, <-chan devResult, error) {
	key := clientKey(t, "a")
	ln, err := quictunnel.Listen("127.0.0.1:0", spki(t, key), nil)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	type res = devResult
	devc := make(chan res, 1)
	go func() {
		defer cancel()
		c, err := ln.Accept(ctx)
		if err != nil {
			ln.Close()
			devc <- res{err: err}
			return
		}
		p, err := tunnel.ServerHandshake(ctx, c.Stream(), func(mtu int) (*tunnel.Params, error) {
			return tunnel.RandomParams(max(min(mtu, c.MaxDatagram()), tunnel.MinMTU), 62078), nil
		})
		if err != nil {
			c.Close()
			devc <- res{err: err}
			return
		}
		stack, err := tunnel.NewUserspace(p.ServerAddress, p.MTU)
		if err != nil {
			c.Close()
			devc <- res{err: err}
			return
		}
		devc <- res{t: tunnel.New(c, stack, p, tunnel.Options{Datagrams: true}), stack: stack, p: p}
	}()
	c, err := quictunnel.Dial(ctx, ln.Addr().String(), key)
	if err != nil {
		cancel()
		ln.Close()
		return nil, nil, err
	}
	return c, devc, nil
}

// startHost starts the host's tunnel on c and waits for the device's.
func startHost(t testing.TB, c *quictunnel.Conn, devc <-chan devResult, backend tunnel.Backend) (*quicPair, error) {
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	host, err := tunnel.Start(ctx, c, tunnel.Options{Backend: backend, Handshake: c.Stream(), Datagrams: true,
		RequestMTU: quictunnel.RequestMTU, MTUClamp: c.MaxDatagram()})
	d := <-devc
	if err != nil || d.err != nil {
		if d.t != nil {
			d.t.Close()
		}
		return nil, fmt.Errorf("host: %v, device: %v", err, d.err)
	}
	t.Cleanup(func() { host.Close(); d.t.Close() })
	return &quicPair{host: host, dev: d.t, devStack: d.stack, params: d.p}, nil
}

// echoThrough dials the device's port 7 through the tunnel with dial, has the device echo,
// and checks n random bytes come back.
func echoThrough(p *quicPair, dial func(ctx context.Context, network, address string) (net.Conn, error), n int) error {
	addr := netip.AddrPortFrom(p.params.ServerAddress, 7)
	ln, err := p.devStack.Net.ListenTCPAddrPort(addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := dial(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	want := make([]byte, n)
	rand.Read(want)
	go c.Write(want)
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo: %d bytes differ", n)
	}
	return nil
}

// checkPair: the MTU fits a datagram, nothing was dropped for size, and the device dropped at
// most the client's padding datagram.
func checkPair(p *quicPair) error {
	if p.host.MTU() > quictunnel.RequestMTU || p.host.MTU() < tunnel.MinMTU {
		return fmt.Errorf("host MTU %d", p.host.MTU())
	}
	hs, ds := p.host.Stats(), p.dev.Stats()
	if hs.Sent.Dropped != 0 || ds.Sent.Dropped != 0 || hs.Received.Dropped != 0 || ds.Received.Dropped > 1 {
		return fmt.Errorf("drops: host %+v, device %+v", hs, ds)
	}
	if hs.Sent.Packets == 0 || ds.Sent.Packets == 0 {
		return fmt.Errorf("no packets: host %+v, device %+v", hs, ds)
	}
	return nil
}

// TestTunnelOverQUICUserspace: CDTunnel handshake on the QUIC stream, then TCP through the
// tunnel (userspace stack on the host) with packets as datagrams, ~1 MiB each way.
func TestTunnelOverQUICUserspace(t *testing.T) {
	p, err := startQUICPair(t, tunnel.Userspace{})
	if err != nil {
		t.Fatal(err)
	}
	if err := echoThrough(p, p.host.DialContext, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := checkPair(p); err != nil {
		t.Fatal(err)
	}
	p.host.Close()
	<-p.dev.Done() // the host's close reaches the device as the end of the connection
}

// TestTunnelOverQUICKernel is the same with the host on a kernel TUN in a throwaway namespace.
func TestTunnelOverQUICKernel(t *testing.T) {
	tunneltest.RequireRoot(t)
	c, devc, err := dialQUIC(t) // the UDP socket stays in the test's namespace
	if err != nil {
		t.Fatal(err)
	}
	err = tunneltest.InNetNS(func() error {
		p, err := startHost(t, c, devc, tunnel.Kernel{})
		if err != nil {
			return err
		}
		defer p.host.Close()
		if ifi, err := net.InterfaceByName(p.host.Interface()); err != nil || ifi.MTU != p.host.MTU() {
			return fmt.Errorf("interface %v: %v", ifi, err)
		}
		if err := echoThrough(p, p.host.DialContext, 1<<20); err != nil {
			return err
		}
		return checkPair(p)
	})
	if err != nil {
		t.Fatal(err)
	}
}
