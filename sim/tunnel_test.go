package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// tunFailAfter bounds waits in tunnel tests; only a hang reaches it.
const tunFailAfter = 30 * time.Second

func tunTCPPair(t testing.TB) (host, dev net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	host, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if dev = <-ch; dev == nil {
		host.Close()
		t.Fatal("accept failed")
	}
	return host, dev
}

// simTunnel is a device serving CoreDeviceProxy on one end of a loopback TCP pair.
type simTunnel struct {
	d       *Device
	hostEnd net.Conn
	session chan *TunnelSession
	served  chan struct{}
	cancel  context.CancelFunc
}

// serveSimTunnel starts the device's CoreDeviceProxy service — as lockdownd would, through the
// service registry, with the options set on the device — on a fresh connection.
func serveSimTunnel(t testing.TB, d *Device, o TunnelOptions) *simTunnel {
	t.Helper()
	svc, ok := lockdownServices[CoreDeviceProxyService]
	if !ok || !svc.SSL {
		t.Fatalf("%s not registered for lockdown with SSL: %+v", CoreDeviceProxyService, svc)
	}
	st := &simTunnel{d: d, session: make(chan *TunnelSession, 1), served: make(chan struct{})}
	o.OnStart = func(s *TunnelSession) { st.session <- s }
	d.SetTunnelOptions(o)
	hc, dc := tunTCPPair(t)
	st.hostEnd = hc
	ctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	go func() {
		defer close(st.served)
		svc.Serve(d, ctx, dc)
	}()
	t.Cleanup(func() {
		cancel()
		hc.Close()
		<-st.served
	})
	return st
}

// hostTunnel runs the host's side on st's connection.
func (st *simTunnel) hostTunnel(t testing.TB, opts tunnel.Options) (*tunnel.Tunnel, *TunnelSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	ht, err := tunnel.Start(ctx, st.hostEnd, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ht.Close() })
	select {
	case s := <-st.session:
		return ht, s
	case <-ctx.Done():
		t.Fatal("device side never started")
	}
	return nil, nil
}

// checkRSD reads the device's RSD handshake over nc and checks one lockdown-style service
// inside the tunnel answers its check-in.
func checkRSD(d *Device, dial func(ctx context.Context, network, addr string) (net.Conn, error), rsdAddr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	nc, err := dial(ctx, "tcp", rsdAddr)
	if err != nil {
		return fmt.Errorf("dial RSD %s: %w", rsdAddr, err)
	}
	c, err := rsd.Client(ctx, nc, rsd.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := rsd.ReadHandshake(ctx, c, nil)
	if err != nil {
		return err
	}
	if h.UDID() != d.UDID || len(h.Services) != len(d.Services()) {
		return fmt.Errorf("handshake: udid %q, %d services (device has %d)", h.UDID(), len(h.Services), len(d.Services()))
	}
	s, ok := h.Service("com.apple.mobile.lockdown.remote.trusted")
	if !ok {
		return errors.New("no trusted remote lockdown service listed")
	}
	host, _, _ := net.SplitHostPort(rsdAddr)
	lc, err := dial(ctx, "tcp", net.JoinHostPort(host, fmt.Sprint(s.Port)))
	if err != nil {
		return fmt.Errorf("dial remote lockdown: %w", err)
	}
	defer lc.Close()
	lc.SetDeadline(time.Now().Add(tunFailAfter))
	if err := lockdown.WritePlist(lc, map[string]any{"Label": "tunnel-test", "ProtocolVersion": "2", "Request": "RSDCheckin"}); err != nil {
		return err
	}
	var reply map[string]any
	if err := lockdown.ReadPlist(lc, &reply); err != nil || reply["Request"] != "RSDCheckin" {
		return fmt.Errorf("check-in reply %v, %v", reply, err)
	}
	return nil
}

// TestTunnelRSDUserspace: host Tunnel (rootless) ↔ the device's CoreDeviceProxy; RSD and a
// service inside the tunnel answer at the granted address and port.
func TestTunnelRSDUserspace(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel", nil)
	st := serveSimTunnel(t, d, TunnelOptions{})
	ht, s := st.hostTunnel(t, tunnel.Options{})
	p := ht.Params()
	if *p != *s.Params {
		t.Fatalf("host got %+v, device granted %+v", p, s.Params)
	}
	if p.MTU != tunnel.DefaultRequestMTU || p.ClientAddress.As16()[0] != 0xfd || p.PrefixLen() != 64 ||
		!p.Prefix().Contains(p.ServerAddress) || p.ServerAddress.As16()[15] != 1 || p.ClientAddress.As16()[15] != 2 {
		t.Fatalf("params %+v", p)
	}
	if err := checkRSD(d, ht.DialContext, p.RSDAddr().String()); err != nil {
		t.Fatal(err)
	}
	if st := s.Tunnel.Stats(); st.Received.Packets == 0 || st.Sent.Packets == 0 {
		t.Fatalf("device counters %+v", st)
	}
}

// TestTunnelRSDKernel is the same with the host on a kernel TUN in a throwaway namespace, using
// plain rsd.Dial: what any tool does once tunneld has set the tunnel up.
func TestTunnelRSDKernel(t *testing.T) {
	tunneltest.RequireRoot(t)
	d := NewDevice(profile.Default(), "tunnel-kernel", nil)
	st := serveSimTunnel(t, d, TunnelOptions{})
	err := tunneltest.InNetNS(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
		defer cancel()
		ht, err := tunnel.Start(ctx, st.hostEnd, tunnel.Options{Backend: tunnel.Kernel{}, MTUClamp: tunnel.CoreDeviceProxyDropAbove})
		if err != nil {
			return err
		}
		defer ht.Close()
		if ht.Interface() == "" || ht.MTU() != 8192 {
			return fmt.Errorf("kernel tunnel: interface %q mtu %d", ht.Interface(), ht.MTU())
		}
		c, h, err := rsd.Dial(ctx, ht.Params().RSDAddr().String(), nil)
		if err != nil {
			return err
		}
		c.Close()
		if h.UDID() != d.UDID {
			return fmt.Errorf("handshake from %q", h.UDID())
		}
		var dialer net.Dialer
		return checkRSD(d, dialer.DialContext, ht.Params().RSDAddr().String())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTunnelDeviceGoneEndsHost: the device side going away (ctx cancelled, as on unplug) ends
// the host tunnel by itself with a transport error; and the host closing ends the device side.
func TestTunnelDeviceGoneEndsHost(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel-gone", nil)
	st := serveSimTunnel(t, d, TunnelOptions{})
	ht, _ := st.hostTunnel(t, tunnel.Options{})
	st.cancel()
	select {
	case <-ht.Done():
	case <-time.After(tunFailAfter):
		t.Fatal("host tunnel still up after the device went away")
	}
	err := ht.Err()
	if err == nil || !strings.HasPrefix(err.Error(), "tunnel: transport: ") ||
		!(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("host Err %v", err)
	}
	<-st.served

	// The other way round: the host hangs up, ServeTunnel returns (goleak checks the rest).
	st2 := serveSimTunnel(t, d, TunnelOptions{})
	ht2, s2 := st2.hostTunnel(t, tunnel.Options{})
	ht2.Close()
	select {
	case <-st2.served:
	case <-time.After(tunFailAfter):
		t.Fatal("device side still serving after the host closed")
	}
	if !errors.Is(s2.Tunnel.Err(), io.EOF) {
		t.Fatalf("device side Err %v", s2.Tunnel.Err())
	}
}

func TestTunnelMTUGrant(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel-mtu", nil)
	for _, c := range []struct{ max, req, want int }{
		{0, 16000, 16000}, {0, 1280, 1280}, {0, 65000, DefaultTunnelMTU}, {9000, 16000, 9000}, {0, 100, 1280},
	} {
		st := serveSimTunnel(t, d, TunnelOptions{MaxMTU: c.max})
		ht, s := st.hostTunnel(t, tunnel.Options{RequestMTU: c.req})
		if ht.Params().MTU != c.want || s.Params.MTU != c.want {
			t.Errorf("max %d request %d: granted %d, want %d", c.max, c.req, ht.Params().MTU, c.want)
		}
		if mtu, _ := s.Stack.MTU(); mtu != c.want {
			t.Errorf("device stack mtu %d, want %d", mtu, c.want)
		}
	}
}

// firstDatagram sends UDP datagrams of the given sizes from the host, in order, to a port on
// the device's stack and returns the size of the first one the device receives. (ICMP echo
// would do too, but wireguard's netstack PingConn misses replies that arrive before Read.)
func firstDatagram(t *testing.T, ht *tunnel.Tunnel, s *TunnelSession, sizes ...int) int {
	t.Helper()
	dst := netip.AddrPortFrom(s.Params.ServerAddress, 9)
	uc, err := s.Stack.Net.ListenUDPAddrPort(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	hc, err := ht.DialContext(ctx, "udp", dst.String())
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	for _, n := range sizes {
		if _, err := hc.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	uc.SetReadDeadline(time.Now().Add(tunFailAfter))
	n, _, err := uc.ReadFrom(make([]byte, 65536))
	if err != nil {
		t.Fatalf("waiting for a datagram: %v (host tunnel %+v, device tunnel %+v)", err, ht.Stats(), s.Tunnel.Stats())
	}
	return n
}

// TestTunnelDropAbove8192: with DropAbove set (as on a real USB CoreDeviceProxy), a 9000-byte
// UDP datagram (a 9048-byte packet) sent first never reaches the device while a small one sent
// after it does; without the option the large one arrives first. Order on the stream proves
// the drop, no timeout needed.
func TestTunnelDropAbove8192(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel-drop", nil)
	for _, drop := range []int{0, tunnel.CoreDeviceProxyDropAbove} {
		st := serveSimTunnel(t, d, TunnelOptions{DropAbove: drop})
		ht, s := st.hostTunnel(t, tunnel.Options{})
		first := firstDatagram(t, ht, s, 9000, 16)
		want := 9000
		if drop > 0 {
			want = 16
		}
		if first != want {
			t.Fatalf("drop %d: first datagram at the device has %d bytes, want %d", drop, first, want)
		}
		if got := s.Tunnel.Stats().Received.Dropped; (drop > 0) != (got == 1) {
			t.Fatalf("drop %d: device dropped %d packets", drop, got)
		}
	}
	// And a host clamped to 8192 works normally against such a device.
	st := serveSimTunnel(t, d, TunnelOptions{DropAbove: tunnel.CoreDeviceProxyDropAbove})
	ht, s := st.hostTunnel(t, tunnel.Options{MTUClamp: tunnel.CoreDeviceProxyDropAbove})
	if err := checkRSD(d, ht.DialContext, ht.Params().RSDAddr().String()); err != nil {
		t.Fatal(err)
	}
	if got := s.Tunnel.Stats().Received.Dropped; got != 0 {
		t.Fatalf("clamped host: device dropped %d packets", got)
	}
}

// TestTunnelRefusesGarbage: a client that is not speaking CDTunnel gets the connection closed
// and an error naming the stage.
func TestTunnelRefusesGarbage(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel-garbage", nil)
	hc, dc := tunTCPPair(t)
	defer hc.Close()
	errc := make(chan error, 1)
	go func() { errc <- d.ServeTunnel(context.Background(), dc, TunnelOptions{}) }()
	hc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "CDTunnel handshake") || !errors.Is(err, tunnel.ErrBadMagic) {
		t.Fatalf("err %v", err)
	}
	hc.SetReadDeadline(time.Now().Add(tunFailAfter))
	if _, err := hc.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestTunnelStall: a device told to stall reads the request and never answers; the host's
// handshake fails at its deadline naming the stage, and the device side ends when it hangs up.
func TestTunnelStall(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel-stall", nil)
	st := serveSimTunnel(t, d, TunnelOptions{Stall: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := tunnel.Start(ctx, st.hostEnd, tunnel.Options{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "CDTunnel handshake (client): reading response") {
		t.Fatalf("Start against a stalled device: %v", err)
	}
	select {
	case <-st.served:
	case <-time.After(tunFailAfter):
		t.Fatal("stalled device side still running after the host left")
	}
}
