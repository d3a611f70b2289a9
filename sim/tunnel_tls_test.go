package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// tlsTunnelPair serves the device's CoreDeviceProxy over TLS at version ver (as lockdownd's
// service TLS: a client certificate required) on a loopback pair and returns the host's TLS
// end, handshaken. Both TLS ends sit on a cork.Conn, as in lockdown.ConnectService and the
// simulator's lockdownd.
func tlsTunnelPair(t *testing.T, d *Device, ver uint16, o TunnelOptions) (*tls.Conn, <-chan *TunnelSession) {
	t.Helper()
	srvCert, _, _ := throwawayCert(t, "device")
	hostCert, _, _ := throwawayCert(t, "host")
	hc, dc := tunTCPPair(t)
	sessions := make(chan *TunnelSession, 1)
	o.OnStart = func(s *TunnelSession) { sessions <- s }
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		tc := tls.Server(cork.New(dc), &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAnyClientCert,
			SessionTicketsDisabled: true, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			dc.Close()
			return
		}
		d.ServeTunnel(ctx, tc, o)
	}()
	t.Cleanup(func() {
		cancel()
		hc.Close()
		<-served
	})
	cli := tls.Client(cork.New(hc), &tls.Config{Certificates: []tls.Certificate{hostCert}, InsecureSkipVerify: true,
		MinVersion: ver, MaxVersion: ver, DynamicRecordSizingDisabled: true})
	hctx, hcancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer hcancel()
	if err := cli.HandshakeContext(hctx); err != nil {
		t.Fatal(err)
	}
	if got := cli.ConnectionState().Version; got != ver {
		t.Fatalf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(ver))
	}
	return cli, sessions
}

// bulkBothWays moves 4 MiB each way at once through one TCP connection between the host's
// dial and a listener on the device's stack and checks every byte.
func bulkBothWays(dial func(ctx context.Context, network, addr string) (net.Conn, error), s *TunnelSession) error {
	ap := netip.AddrPortFrom(s.Params.ServerAddress, 4321)
	ln, err := s.Stack.Net.ListenTCPAddrPort(ap)
	if err != nil {
		return err
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); acc <- c }()
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	hc, err := dial(ctx, "tcp", ap.String())
	if err != nil {
		return err
	}
	defer hc.Close()
	dc := <-acc
	if dc == nil {
		return fmt.Errorf("device accept failed")
	}
	defer dc.Close()
	up, down := make([]byte, 4<<20), make([]byte, 4<<20)
	rand.Read(up)
	rand.Read(down)
	type got struct {
		b   []byte
		err error
	}
	gotUp, gotDown := make(chan got, 1), make(chan got, 1)
	go func() { b, err := io.ReadAll(io.LimitReader(dc, int64(len(up)))); gotUp <- got{b, err} }()
	go func() { b, err := io.ReadAll(io.LimitReader(hc, int64(len(down)))); gotDown <- got{b, err} }()
	go hc.Write(up)
	go dc.Write(down)
	u, dn := <-gotUp, <-gotDown
	if u.err != nil || !bytes.Equal(u.b, up) {
		return fmt.Errorf("host→device: %d of %d bytes intact, %v", len(u.b), len(up), u.err)
	}
	if dn.err != nil || !bytes.Equal(dn.b, down) {
		return fmt.Errorf("device→host: %d of %d bytes intact, %v", len(dn.b), len(down), dn.err)
	}
	return nil
}

// TestTunnelBackendsAndTLSVersions: the host tunnel over CoreDeviceProxy's TLS at both versions
// the simulator offers (1.2, as appium-ios-tuntap forces; 1.3, what Go hosts negotiate), on the
// userspace and the kernel backend, with each side batching its writes (held into one socket
// write) or sending one packet per write (iosmuxd's default on the host): RSD answers and bulk
// TCP arrives intact both ways at once.
func TestTunnelBackendsAndTLSVersions(t *testing.T) {
	d := NewDevice(profile.Default(), "tunnel-tls", nil)
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, backend := range []string{"userspace", "kernel"} {
			for _, mode := range []struct{ host, dev bool }{{false, false}, {true, true}, {true, false}} {
				one := mode.dev
				name := fmt.Sprintf("%s/%s/one-packet-per-write-host=%v-device=%v", tls.VersionName(ver), backend, mode.host, mode.dev)
				t.Run(name, func(t *testing.T) {
					if backend == "kernel" {
						tunneltest.RequireRoot(t)
					}
					tc, sessions := tlsTunnelPair(t, d, ver, TunnelOptions{OnePacketPerWrite: one})
					run := func() error {
						ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
						defer cancel()
						opts := tunnel.Options{MTUClamp: tunnel.CoreDeviceProxyDropAbove, OnePacketPerWrite: mode.host}
						if backend == "kernel" {
							opts.Backend = tunnel.Kernel{}
						}
						ht, err := tunnel.Start(ctx, tc, opts)
						if err != nil {
							return err
						}
						defer ht.Close()
						var s *TunnelSession
						select {
						case s = <-sessions:
						case <-ctx.Done():
							return fmt.Errorf("device side never started")
						}
						dial := ht.DialContext
						if err := checkRSD(d, dial, ht.Params().RSDAddr().String()); err != nil {
							return err
						}
						return bulkBothWays(dial, s)
					}
					var err error
					if backend == "kernel" {
						err = tunneltest.InNetNS(run)
					} else {
						err = run()
					}
					if err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
