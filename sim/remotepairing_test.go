package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tlspsk"
)

// untrustedRSD serves d's untrusted RSD on loopback and returns the tunnel service address.
func untrustedRSD(t *testing.T, d *Device) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := d.ServeRSD(ctx, TCPListen("127.0.0.1"), 0, RSDOptions{Untrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cancel() })
	dctx, dcancel := context.WithTimeout(ctx, tunFailAfter)
	defer dcancel()
	c, h, err := rsd.Dial(dctx, r.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s, ok := h.Service(TunnelServiceName)
	if !ok {
		t.Fatalf("untrusted RSD lists no %s", TunnelServiceName)
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(s.Port))
}

// controlChannel connects to the tunnel service and returns a host session after the hello.
func controlChannel(t *testing.T, addr string, id pairing.Identity) *pairing.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	c, err := rsd.DialClient(ctx, addr, rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if v, err := pairing.ReadServiceHello(ctx, c); err != nil || v != pairing.TunnelServiceVersion {
		t.Fatalf("service hello %d %v", v, err)
	}
	return pairing.NewHost(pairing.NewXPCTransport(c), pairing.HostConfig{Identity: id, Name: "iosmux-test"})
}

func hostIdentity(t *testing.T, id string) pairing.Identity {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pairing.Identity{Identifier: id, Key: k, Info: pairing.HostInfo(id, "iosmux-test", make([]byte, 16))}
}

// TestRemotePairingUntrustedRSD: a host pairs with the simulator over its untrusted RSD (Trust
// accepted), reconnects, pair-verifies with no prompt, asks for a TCP listener and brings up a
// TLS-PSK tunnel whose CDTunnel handshake completes and carries RSD.
func TestRemotePairingUntrustedRSD(t *testing.T) {
	d := NewDevice(profile.Default(), "remotepairing", nil)
	addr := untrustedRSD(t, d)
	host := hostIdentity(t, "AB746A8E-26BC-3F08-9176-C0ABECD1D9C8")
	ctx, cancel := context.WithTimeout(context.Background(), 2*tunFailAfter)
	defer cancel()

	h := controlChannel(t, addr, host)
	info, err := h.Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pdi, _ := info["peerDeviceInfo"].(map[string]any); pdi["udid"] != d.UDID {
		t.Fatalf("handshake peerDeviceInfo %v", info["peerDeviceInfo"])
	}
	if _, err := h.Verify(ctx); err == nil {
		t.Fatal("pair-verify of an unknown host succeeded")
	}
	peer, err := h.Setup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if udid, _ := peer.Info.Get("remotepairing_udid"); udid != d.UDID || peer.Identifier != d.RemotePairingIdentifier() {
		t.Fatalf("M6 device %q udid %v", peer.Identifier, udid)
	}
	if hs := d.RemotePairingHosts(); len(hs) != 1 || hs[0] != host.Identifier {
		t.Fatalf("device paired hosts %v", hs)
	}

	d.SetTrust(TrustDeny) // a second prompt would now fail the test
	h2 := controlChannel(t, addr, host)
	if _, err := h2.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	psk, err := h2.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h2.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": psk, "transportProtocolType": "tcp",
		"peerConnectionsInfo": []any{pairing.Obj{"owningPID": 1234, "owningProcessName": "CoreDeviceService"}}})
	if err != nil {
		t.Fatal(err)
	}
	port, ok := pairing.Uint(res["port"])
	if spki, err := pairing.Bytes(res["devicePublicKey"]); !ok || err != nil || len(spki) == 0 {
		t.Fatalf("createListener reply %v", res)
	}
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	tc := tlspsk.Client(nc, tlspsk.Config{PSK: psk})
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	ht, err := tunnel.Start(ctx, tc, tunnel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ht.Close()
	if err := checkRSD(d, ht.DialContext, ht.Params().RSDAddr().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": psk, "transportProtocolType": "quic"}); err == nil {
		t.Fatal("quic listener granted for a key that is no SubjectPublicKeyInfo")
	}
}

// TestRemotePairingTrustDenied: Don't Trust gives a clear error and stores nothing.
func TestRemotePairingTrustDenied(t *testing.T) {
	d := NewDevice(profile.Default(), "remotepairing-deny", nil)
	d.SetTrust(TrustDeny)
	addr := untrustedRSD(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	h := controlChannel(t, addr, hostIdentity(t, "HOST"))
	if _, err := h.Setup(ctx); !errors.Is(err, pairing.ErrTrustDenied) {
		t.Fatalf("%v", err)
	}
	if hs := d.RemotePairingHosts(); len(hs) != 0 {
		t.Fatalf("denied host stored: %v", hs)
	}
}

// TestRemotePairingTrustNever: an unanswered prompt keeps the host waiting only as long as its
// own deadline, and the device drops the prompt when the host hangs up.
func TestRemotePairingTrustNever(t *testing.T) {
	var logs peertest.LogBuffer
	d := NewDevice(profile.Default(), "remotepairing-never", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	d.SetTrust(TrustNever)
	addr := untrustedRSD(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	c, err := rsd.DialClient(ctx, addr, rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pairing.ReadServiceHello(ctx, c); err != nil {
		t.Fatal(err)
	}
	h := pairing.NewHost(pairing.NewXPCTransport(c), pairing.HostConfig{Identity: hostIdentity(t, "HOST")})
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	if _, err := h.Setup(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(logs.String(), "Trust prompt left unanswered") {
		t.Fatalf("no prompt logged:\n%s", logs.String())
	}
	c.Close()
	for !strings.Contains(logs.String(), "Trust prompt: context canceled") {
		select {
		case <-ctx.Done():
			t.Fatalf("the device kept the prompt open after the host left:\n%s", logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if hs := d.RemotePairingHosts(); len(hs) != 0 {
		t.Fatalf("stored without consent: %v", hs)
	}
}

// TestRemotePairingNetworkPort: the RPPairing port pair-verifies a host paired over the
// untrusted RSD and grants a TLS-PSK listener (pairing.md §2.2: only verify is expected there).
func TestRemotePairingNetworkPort(t *testing.T) {
	d := NewDevice(profile.Default(), "remotepairing-net", nil)
	host := hostIdentity(t, "HOST-NET")
	ctx, cancel := context.WithTimeout(context.Background(), 2*tunFailAfter)
	defer cancel()
	if _, err := controlChannel(t, untrustedRSD(t, d), host).Setup(ctx); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.ServeRemotePairing(sctx, ln) }()
	defer func() {
		scancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h := pairing.NewHost(pairing.NewFramedTransport(nc), pairing.HostConfig{Identity: host})
	if _, err := h.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	psk, err := h.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": psk, "transportProtocolType": "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	port, _ := pairing.Uint(res["port"])
	tc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	c := tlspsk.Client(tc, tlspsk.Config{PSK: psk})
	defer c.Close()
	p, err := tunnel.ClientHandshake(ctx, c, 1280)
	if err != nil || p.MTU != 1280 {
		t.Fatalf("CDTunnel over the network-port listener: %+v %v", p, err)
	}
}
