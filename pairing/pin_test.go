package pairing

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// pinDevice serves one connection as a PIN-pairing device (the tvOS flow) and records refusals.
type pinDevice struct {
	dev     *simDevice
	pinOnly bool // the handshake says allowsPinlessPairing false
	mu      sync.Mutex
	refused []string
}

func (p *pinDevice) connect(t *testing.T, cfg HostConfig) *Host {
	t.Helper()
	dc := p.dev.config()
	dc.PINPairing = true
	if p.pinOnly {
		dc.Handshake = Obj{"wireProtocolVersion": 19, "deviceOptions": Obj{"allowsPinlessPairing": false}}
	}
	dc.Refused = func(stage string, err error) {
		p.mu.Lock()
		p.refused = append(p.refused, stage)
		p.mu.Unlock()
	}
	hc, dcn := net.Pipe()
	t.Cleanup(func() { hc.Close(); dcn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	go NewDevice(NewFramedTransport(dcn), dc).Serve(ctx)
	h := NewHost(NewFramedTransport(hc), cfg)
	if _, err := h.Handshake(ctx10(t)); err != nil {
		t.Fatal(err)
	}
	return h
}

func (p *pinDevice) refusals() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string{}, p.refused...)
}

// TestPINPairing: a device in PIN mode pairs a host given its PIN with no consent event; a host
// given no PIN stops after M2 with ErrPINRequired (no PIN try spent, nothing refused); a wrong
// PIN is ErrWrongPIN on the host and a refusal on the device; nobody is stored on failure.
func TestPINPairing(t *testing.T) {
	const pin = "314159"
	for _, c := range []struct {
		name, devPIN, pin string
		pinOnly           bool
		want              error // nil: paired
		refused           int
	}{
		{"right", pin, pin, true, nil, 0},
		{"none", pin, "", true, ErrPINRequired, 0},
		{"wrong", pin, "271828", true, ErrWrongPIN, 1},
		// No consent event but a handshake that does not rule out pinless pairing (as the
		// lockdown control channel): the host goes on with the fixed password.
		{"none-not-pin-only", DefaultSetupPIN, "", false, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &pinDevice{dev: &simDevice{id: randomIdentity(t, "APPLETV"), pin: c.devPIN,
				hosts: map[string]ed25519.PublicKey{}}, pinOnly: c.pinOnly}
			host := randomIdentity(t, "HOST-PIN")
			h := p.connect(t, HostConfig{Identity: host, PIN: c.pin, Name: "testhost"})
			_, err := h.Setup(ctx10(t))
			if h.prompted {
				t.Error("the PIN device sent awaitingUserConsent")
			}
			if c.want == nil {
				if err != nil || !p.dev.paired(host.Identifier) {
					t.Fatalf("Setup: %v; stored %v", err, p.dev.paired(host.Identifier))
				}
			} else if !errors.Is(err, c.want) {
				t.Fatalf("Setup: %v, want %v", err, c.want)
			}
			if c.want != nil && p.dev.paired(host.Identifier) {
				t.Error("the device stored a host that failed")
			}
			if c.want == ErrWrongPIN {
				var pe *PeerError
				if !errors.As(err, &pe) || pe.Code != ErrorAuthentication {
					t.Errorf("wrong PIN: %v is not the device's ERROR=authentication", err)
				}
			}
			// The device's refusal is reported while it serves; give it the moment to run.
			deadline := time.Now().Add(5 * time.Second)
			for len(p.refusals()) < c.refused && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if r := p.refusals(); len(r) != c.refused || (c.refused > 0 && r[0] != "pair-setup") {
				t.Errorf("device refusals %v, want %d pair-setup", r, c.refused)
			}
		})
	}
}

func TestCheckPIN(t *testing.T) {
	for pin, ok := range map[string]bool{"314159": true, "0000": true, "12345678": true, "123": false,
		"123456789": false, "12a456": false, "": false, "１２３４": false} {
		if err := CheckPIN(pin); (err == nil) != ok {
			t.Errorf("CheckPIN(%q) = %v", pin, err)
		}
	}
}
