package tlspsk_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tlspsk"
)

func identity(tb testing.TB, id string) pairing.Identity {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pairing.Identity{Identifier: id, Key: k, Info: pairing.Dict{{Key: "accountID", Value: id}}}
}

// remoteDevice is an in-process RemotePairing device on the RPPairing port: pair-verify against
// one known host, then createListener opens a TCP+TLS-PSK listener (key from the request) that
// answers the CDTunnel handshake.
func remoteDevice(tb testing.TB, host pairing.Identity) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	dev := identity(tb, "DEVICE")
	createListener := func(args pairing.Obj) (pairing.Obj, error) {
		psk, err := pairing.Bytes(args["key"])
		if err != nil {
			return nil, fmt.Errorf("createListener key: %w", err)
		}
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tl.Close()
			nc, err := tl.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
			defer hcancel()
			c := tlspsk.Server(nc, tlspsk.Config{PSK: psk})
			if c.HandshakeContext(hctx) != nil {
				return
			}
			_, _ = tunnel.ServerHandshake(hctx, c, func(mtu int) (*tunnel.Params, error) {
				return tunnel.RandomParams(mtu, 58783), nil
			})
			c.Close()
		}()
		return pairing.Obj{"port": tl.Addr().(*net.TCPAddr).Port}, nil
	}
	cfg := pairing.DeviceConfig{
		Identity:  dev,
		Handshake: pairing.Obj{"wireProtocolVersion": 19},
		Paired: func(hid string) (ed25519.PublicKey, bool) {
			return host.Key.Public().(ed25519.PublicKey), hid == host.Identifier
		},
		Handle: func(name string, args pairing.Obj) (pairing.Obj, error) {
			if name != pairing.RequestCreateListener {
				return nil, errors.New("Unsupported operation")
			}
			return createListener(args)
		},
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				_ = pairing.NewDevice(pairing.NewFramedTransport(nc), cfg).Serve(ctx)
			}()
		}
	}()
	return ln.Addr().String()
}

// verifyAndTunnel is the host's path to a tunnel: RPPairing connect, handshake, pair-verify,
// encrypted createListener, TCP connect, TLS-PSK with the verify secret, CDTunnel handshake.
func verifyAndTunnel(ctx context.Context, addr string, host pairing.Identity) (*tunnel.Params, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	h := pairing.NewHost(pairing.NewFramedTransport(nc), pairing.HostConfig{Identity: host})
	if _, err := h.Handshake(ctx); err != nil {
		return nil, err
	}
	psk, err := h.Verify(ctx)
	if err != nil {
		return nil, err
	}
	res, err := h.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": psk, "transportProtocolType": "tcp"})
	if err != nil {
		return nil, err
	}
	port, ok := pairing.Uint(res["port"])
	if !ok {
		return nil, fmt.Errorf("createListener returned %v", res)
	}
	tc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	defer tc.Close()
	c := tlspsk.Client(tc, tlspsk.Config{PSK: psk})
	if err := c.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	defer c.Close()
	return tunnel.ClientHandshake(ctx, c, 1280)
}

// TestVerifyThenTunnel: pair-verify over RPPairing yields the PSK of a TLS-PSK tunnel whose
// CDTunnel handshake completes; a host the device does not know gets no tunnel.
func TestVerifyThenTunnel(t *testing.T) {
	host := identity(t, "HOST")
	addr := remoteDevice(t, host)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := verifyAndTunnel(ctx, addr, host)
	if err != nil {
		t.Fatal(err)
	}
	if p.MTU != 1280 || p.ServerRSDPort != 58783 || !p.ClientAddress.Is6() {
		t.Fatalf("tunnel params %+v", p)
	}
	var pe *pairing.PeerError
	if _, err := verifyAndTunnel(ctx, addr, identity(t, "STRANGER")); !errors.As(err, &pe) {
		t.Fatalf("unknown host: %v", err)
	}
}

// BenchmarkVerifyThenTunnel is the host's time from connect to a usable tunnel over loopback:
// handshake, pair-verify, createListener, TLS-PSK handshake, CDTunnel handshake (device in-process).
func BenchmarkVerifyThenTunnel(b *testing.B) {
	host := identity(b, "HOST")
	addr := remoteDevice(b, host)
	ctx := context.Background()
	for b.Loop() {
		if _, err := verifyAndTunnel(ctx, addr, host); err != nil {
			b.Fatal(err)
		}
	}
}
