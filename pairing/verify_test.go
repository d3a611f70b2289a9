package pairing

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func lookupOf(id Identity) func(string) (ed25519.PublicKey, bool) {
	return func(hid string) (ed25519.PublicKey, bool) {
		if hid != id.Identifier {
			return nil, false
		}
		return id.public(), true
	}
}

// TestPairVerifyGolden pins V-M1, V-M3 and the shared secret to test-vectors.md §8.2.
func TestPairVerifyGolden(t *testing.T) {
	host := goldenHost(t)
	dev := randomIdentity(t, "device-1")
	h, err := NewVerifyHost(host, readerOrNil(unhex(t, x25519Alice)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewVerifyDevice(dev, lookupOf(host), readerOrNil(unhex(t, x25519Bob)))
	if err != nil {
		t.Fatal(err)
	}
	m1 := h.M1()
	checkHex(t, "V-M1", m1, goldenVM1)
	m2, err := d.HandleM1(m1)
	if err != nil {
		t.Fatal(err)
	}
	m3, err := h.HandleM2(m2)
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "V-M3", m3, goldenVM3)
	if h.DeviceIdentifier() != "device-1" {
		t.Fatalf("device identifier from V-M2 = %q", h.DeviceIdentifier())
	}
	m4, err := d.HandleM3(m3)
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "V-M4", m4, "060104")
	if err := h.HandleM4(m4); err != nil {
		t.Fatal(err)
	}
	checkHex(t, "host shared", h.SharedSecret(), x25519Shared)
	checkHex(t, "device shared", d.SharedSecret(), x25519Shared)
	if d.HostIdentifier() != goldenHID {
		t.Fatalf("device verified %q", d.HostIdentifier())
	}
}

func runVerify(t *testing.T, host Identity, lookup func(string) (ed25519.PublicKey, bool), tamper func(step int, b []byte) []byte) (*VerifyHost, *VerifyDevice, error, error) {
	t.Helper()
	if tamper == nil {
		tamper = func(_ int, b []byte) []byte { return b }
	}
	h, _ := NewVerifyHost(host, nil)
	d, _ := NewVerifyDevice(randomIdentity(t, "D"), lookup, nil)
	m2, devErr := d.HandleM1(tamper(1, h.M1()))
	if devErr != nil {
		return h, d, nil, devErr
	}
	m3, hostErr := h.HandleM2(tamper(2, m2))
	if hostErr != nil {
		return h, d, hostErr, nil
	}
	m4, devErr := d.HandleM3(tamper(3, m3))
	return h, d, h.HandleM4(tamper(4, m4)), devErr
}

func TestPairVerifyHostAgainstDevice(t *testing.T) {
	host := randomIdentity(t, "H")
	h, d, hostErr, devErr := runVerify(t, host, lookupOf(host), nil)
	if hostErr != nil || devErr != nil {
		t.Fatal(hostErr, devErr)
	}
	if len(h.SharedSecret()) != 32 || string(h.SharedSecret()) != string(d.SharedSecret()) {
		t.Fatal("shared secrets differ")
	}
}

func TestPairVerifyFailures(t *testing.T) {
	host := randomIdentity(t, "H")
	impostor := host
	impostor.Key = randomIdentity(t, "H").Key // same identifier, other key
	cases := []struct {
		name    string
		host    Identity
		lookup  func(string) (ed25519.PublicKey, bool)
		step    int
		typ     byte
		devWant error
	}{
		{"unknown host", randomIdentity(t, "STRANGER"), lookupOf(host), 0, 0, ErrProtocol},
		{"wrong key", impostor, lookupOf(host), 0, 0, ErrProtocol},
		{"tampered V-M3", host, lookupOf(host), 3, TypeEncryptedData, ErrDecrypt},
		{"tampered V-M1 key", host, lookupOf(host), 1, TypePublicKey, ErrDecrypt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, d, hostErr, devErr := runVerify(t, c.host, c.lookup, func(step int, b []byte) []byte {
				if step == c.step {
					return flip(t, b, c.typ)
				}
				return b
			})
			if !errors.Is(devErr, c.devWant) {
				t.Fatalf("device: %v, want %v", devErr, c.devWant)
			}
			var pe *PeerError
			if !errors.As(hostErr, &pe) || pe.Code != ErrorAuthentication || pe.Stage != "pair-verify M4" {
				t.Fatalf("host: %v", hostErr)
			}
			if h.SharedSecret() != nil || d.SharedSecret() != nil {
				t.Fatal("a shared secret survived a failed verify")
			}
		})
	}
}

func TestPairVerifyDeviceRefusesAtM2(t *testing.T) {
	h, _ := NewVerifyHost(randomIdentity(t, "H"), nil)
	h.M1()
	_, err := h.HandleM2(errorTLV(StateM2, ErrorUnknownPeer))
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Code != ErrorUnknownPeer {
		t.Fatalf("V-M2 ERROR: %v", err)
	}
	if err := h.HandleM4([]byte{6, 1, 4}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("V-M4 after a failed V-M2: %v", err)
	}
}

func TestChannelGolden(t *testing.T) {
	shared := unhex(t, x25519Shared)
	checkHex(t, "kClient", deriveKey(shared, "", hkdfClientEncryptInfo), goldenKClient)
	checkHex(t, "kServer", deriveKey(shared, "", hkdfServerEncryptInfo), goldenKServer)
	host, _ := NewChannel(shared, RoleHost)
	dev, _ := NewChannel(shared, RoleDevice)
	ct, err := host.Seal([]byte(goldenReqPlain))
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "request", ct, goldenReqCipher)
	pt, err := dev.Open(ct)
	if err != nil || string(pt) != goldenReqPlain {
		t.Fatalf("device open: %v", err)
	}
	rct, err := dev.Seal([]byte(goldenRespPlain))
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "response", rct, goldenRespCipher)
	if pt, err := host.Open(rct); err != nil || string(pt) != goldenRespPlain {
		t.Fatalf("host open: %v", err)
	}
	for n, want := range map[uint64]string{0: "000000000000000000000000", 1: "010000000000000000000000",
		255: "ff0000000000000000000000", 256: "000100000000000000000000"} {
		checkHex(t, "nonce", channelNonce(n), want)
	}
}

func TestChannelCounterAndTamper(t *testing.T) {
	host, _ := NewChannel(make([]byte, 64), RoleHost)
	dev, _ := NewChannel(make([]byte, 64), RoleDevice)
	for i := 0; i < 3; i++ {
		ct, _ := host.Seal([]byte("req"))
		if _, err := host.Seal([]byte("again")); !errors.Is(err, ErrProtocol) {
			t.Fatalf("two requests in flight: %v", err)
		}
		if _, err := dev.Open(ct); err != nil {
			t.Fatal(err)
		}
		rct, _ := dev.Seal([]byte("resp"))
		if _, err := host.Open(rct); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	// A replayed request (old counter) and a tampered one fail.
	ct, _ := host.Seal([]byte("req"))
	bad := append([]byte{}, ct...)
	bad[0] ^= 1
	if _, err := dev.Open(bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered request: %v", err)
	}
	if _, err := dev.Open(ct); err != nil {
		t.Fatal(err)
	}
	// A response sealed by the wrong direction's key fails.
	wrong, _ := NewChannel(make([]byte, 64), RoleHost)
	wct, _ := wrong.Seal([]byte("x"))
	if _, err := host.Open(wct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("request key accepted for a response: %v", err)
	}
	if _, err := dev.Seal(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Seal(nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("response without request: %v", err)
	}
	if _, err := NewChannel(nil, RoleHost); err == nil {
		t.Fatal("keyless channel")
	}
}
