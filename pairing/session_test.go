package pairing

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// simDevice is an in-memory device keeping the hosts it paired with.
type simDevice struct {
	mu      sync.Mutex
	id      Identity
	pin     string
	hosts   map[string]ed25519.PublicKey
	consent func(ctx context.Context, name string) (bool, error)
}

func (s *simDevice) config() DeviceConfig {
	return DeviceConfig{
		Identity:  s.id,
		PIN:       s.pin,
		Handshake: Obj{"wireProtocolVersion": 19, "peerDeviceInfo": Obj{"identifier": s.id.Identifier, "model": "iPhone15,3"}},
		Paired: func(hid string) (ed25519.PublicKey, bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			k, ok := s.hosts[hid]
			return k, ok
		},
		Consent: s.consent,
		Store: func(p *Peer) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.hosts[p.Identifier] = p.PublicKey
			return nil
		},
		Handle: func(name string, args Obj) (Obj, error) {
			if name != RequestCreateListener {
				return nil, errors.New("Unsupported operation")
			}
			return Obj{"port": 49152, "echo": args["key"]}, nil
		},
	}
}

func (s *simDevice) paired(hid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.hosts[hid]
	return ok
}

// connect starts the device on one end of a pipe and returns the host end and the device's result.
func connect(t *testing.T, dev *simDevice, cfg HostConfig) (*Host, <-chan error) {
	t.Helper()
	hc, dc := net.Pipe()
	t.Cleanup(func() { hc.Close(); dc.Close() })
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	go func() { done <- NewDevice(NewFramedTransport(dc), dev.config()).Serve(ctx) }()
	return NewHost(NewFramedTransport(hc), cfg), done
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSessionSetupThenVerify(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "DEVICE-UDID"), hosts: map[string]ed25519.PublicKey{}}
	hostID := randomIdentity(t, "HOST-1")
	cfg := HostConfig{Identity: hostID, Name: "testhost"}
	ctx := ctx10(t)

	h, _ := connect(t, dev, cfg)
	info, err := h.Handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pdi, _ := info["peerDeviceInfo"].(map[string]any); pdi["identifier"] != "DEVICE-UDID" {
		t.Fatalf("handshake reply %v", info)
	}
	if _, err := h.Verify(ctx); err == nil {
		t.Fatal("verify of an unpaired host succeeded")
	}
	peer, err := h.Setup(ctx) // same connection, after pairVerifyFailed
	if err != nil {
		t.Fatal(err)
	}
	if peer.Identifier != "DEVICE-UDID" || !dev.paired("HOST-1") {
		t.Fatalf("pairing not recorded: %q %v", peer.Identifier, dev.paired("HOST-1"))
	}
	if _, err := h.Request(ctx, RequestRemoteUnlock, Obj{}); err == nil {
		t.Fatal("unsupported request answered")
	} else if de := (*DeviceError)(nil); !errors.As(err, &de) || de.Code != 3 {
		t.Fatalf("errorExtended not surfaced: %v", err)
	}

	// Reconnect: pair-verify with no prompt, then an encrypted createListener.
	dev.consent = func(context.Context, string) (bool, error) { t.Error("Trust asked again"); return false, nil }
	h2, _ := connect(t, dev, cfg)
	if _, err := h2.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	psk, err := h2.Verify(ctx)
	if err != nil || len(psk) != 32 {
		t.Fatalf("verify: %v", err)
	}
	for i := 0; i < 3; i++ {
		res, err := h2.Request(ctx, RequestCreateListener, Obj{"key": psk, "transportProtocolType": "tcp"})
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := Uint(res["port"]); p != 49152 {
			t.Fatalf("createListener result %v", res)
		}
		if echo, _ := Bytes(res["echo"]); string(echo) != string(psk) {
			t.Fatal("request arguments did not survive the encrypted channel")
		}
	}
}

func TestSessionTrustDenied(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "D"), hosts: map[string]ed25519.PublicKey{},
		consent: func(context.Context, string) (bool, error) { return false, nil }}
	h, done := connect(t, dev, HostConfig{Identity: randomIdentity(t, "H")})
	ctx := ctx10(t)
	if _, err := h.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := h.Setup(ctx)
	if !errors.Is(err, ErrTrustDenied) {
		t.Fatalf("host: %v", err)
	}
	if derr := <-done; !errors.Is(derr, ErrTrustDenied) {
		t.Fatalf("device: %v", derr)
	}
	if dev.paired("H") {
		t.Fatal("a denied host was stored")
	}
}

func TestSessionTrustNeverAnswered(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "D"), hosts: map[string]ed25519.PublicKey{},
		consent: func(ctx context.Context, _ string) (bool, error) { <-ctx.Done(); return false, ctx.Err() }}
	h, _ := connect(t, dev, HostConfig{Identity: randomIdentity(t, "H")})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := h.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Setup(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Trust prompt on the device was not answered") {
		t.Fatalf("host waited for Trust without bound or unclearly: %v", err)
	}
}

func TestSessionWrongPIN(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "D"), pin: "111111", hosts: map[string]ed25519.PublicKey{}}
	h, _ := connect(t, dev, HostConfig{Identity: randomIdentity(t, "H"), PIN: "222222"})
	ctx := ctx10(t)
	_, err := h.Setup(ctx)
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Code != ErrorAuthentication {
		t.Fatalf("wrong PIN: %v", err)
	}
	if dev.paired("H") {
		t.Fatal("stored after a wrong PIN")
	}
}

func TestSessionRequestBeforeVerify(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "D"), hosts: map[string]ed25519.PublicKey{}}
	h, _ := connect(t, dev, HostConfig{Identity: randomIdentity(t, "H")})
	if _, err := h.Request(ctx10(t), RequestCreateListener, Obj{}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("request with no session: %v", err)
	}
}

func TestSessionDeviceIdleTimeout(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "D"), hosts: map[string]ed25519.PublicKey{}}
	hc, dc := net.Pipe()
	defer hc.Close()
	defer dc.Close()
	cfg := dev.config()
	cfg.IdleTimeout = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- NewDevice(NewFramedTransport(dc), cfg).Serve(ctx10(t)) }()
	// One handshake resets nothing permanent: the device still ends after an idle period.
	h := NewHost(NewFramedTransport(hc), HostConfig{Identity: randomIdentity(t, "H")})
	if _, err := h.Handshake(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("device ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("idle host kept the device session")
	}
}
