package sim

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/quictunnel"
)

// verifiedChannel pairs a fresh host with d over its untrusted RSD and returns a pair-verified
// control channel.
func verifiedChannel(t *testing.T, d *Device) *pairing.Host {
	t.Helper()
	addr := untrustedRSD(t, d)
	host := hostIdentity(t, "5C0D1A0B-QUIC-TEST")
	ctx, cancel := context.WithTimeout(context.Background(), 2*tunFailAfter)
	defer cancel()
	h := controlChannel(t, addr, host)
	if _, err := h.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	h2 := controlChannel(t, addr, host)
	if _, err := h2.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	return h2
}

// TestRemotePairingQUIC: createListener "quic" with a fresh RSA key's SPKI answers a UDP port
// and the device's public key; a QUIC client with that key gets a tunnel whose CDTunnel
// handshake runs on the stream and which carries RSD as datagrams. A client with another key
// is refused.
func TestRemotePairingQUIC(t *testing.T) {
	d := NewDevice(profile.Default(), "remotepairing-quic", nil)
	h := verifiedChannel(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 2*tunFailAfter)
	defer cancel()
	key, err := quictunnel.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := quictunnel.SPKI(&key.PublicKey)
	listen := func() string {
		res, err := h.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": spki, "transportProtocolType": "quic"})
		if err != nil {
			t.Fatal(err)
		}
		port, ok := pairing.Uint(res["port"])
		dpk, err := pairing.Bytes(res["devicePublicKey"])
		if !ok || err != nil {
			t.Fatalf("createListener reply %v", res)
		}
		if _, err := quictunnel.ParseSPKI(dpk); err != nil {
			t.Fatalf("devicePublicKey: %v", err)
		}
		return fmt.Sprintf("127.0.0.1:%d|%x", port, dpk)
	}

	// Another key than the one in createListener: refused.
	other, err := quictunnel.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	addr, _, _ := strings.Cut(listen(), "|")
	if c, err := quictunnel.Dial(ctx, addr, other); err == nil {
		_, err = tunnel.ClientHandshake(ctx, c.Stream(), quictunnel.RequestMTU)
		c.Close()
		if err == nil {
			t.Fatal("a QUIC client with another key got a tunnel")
		}
	}

	addr, dpk, _ := strings.Cut(listen(), "|")
	c, err := quictunnel.Dial(ctx, addr, key)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", c.PeerSPKI()) != dpk {
		t.Fatal("the device's QUIC certificate is not for devicePublicKey")
	}
	ht, err := tunnel.Start(ctx, c, tunnel.Options{Handshake: c.Stream(), Datagrams: true, RequestMTU: quictunnel.RequestMTU, MTUClamp: c.MaxDatagram()})
	if err != nil {
		t.Fatal(err)
	}
	defer ht.Close()
	if ht.Params().MTU > c.MaxDatagram() || ht.Params().MTU < tunnel.MinMTU {
		t.Fatalf("granted MTU %d, a datagram carries %d", ht.Params().MTU, c.MaxDatagram())
	}
	if err := checkRSD(d, ht.DialContext, ht.Params().RSDAddr().String()); err != nil {
		t.Fatal(err)
	}
	if st := ht.Stats(); st.Sent.Dropped != 0 || st.Received.Dropped != 0 || st.Received.Packets == 0 {
		t.Fatalf("host stats %+v", st)
	}
}

// TestRemotePairingQUICRefused: with RefuseQUIC (iOS 18.2 and later) createListener "quic" is
// refused with an error naming the transport, while "tcp" still works.
func TestRemotePairingQUICRefused(t *testing.T) {
	d := NewDevice(profile.Default(), "remotepairing-noquic", nil)
	d.SetTunnelOptions(TunnelOptions{RefuseQUIC: true})
	h := verifiedChannel(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	key, err := quictunnel.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := quictunnel.SPKI(&key.PublicKey)
	_, err = h.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": spki, "transportProtocolType": "quic"})
	if err == nil || !strings.Contains(err.Error(), "quic") {
		t.Fatalf("QUIC on a device that refuses it: %v", err)
	}
	res, err := h.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": bytes.Repeat([]byte{1}, 32), "transportProtocolType": "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pairing.Uint(res["port"]); !ok {
		t.Fatalf("tcp reply %v", res)
	}
}
