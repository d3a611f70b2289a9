package pairing

import (
	"crypto/rand"
	"fmt"
	"io"
)

// SetupHost is the host (controller) role of pair-setup M1…M6 (pairing.md §7), a pure state
// machine: feed it the device's messages in order and send what it returns.
type SetupHost struct {
	id   Identity
	pin  string
	rand io.Reader
	srp  *SRPClient
	kEnc []byte
	next byte // the device state expected next
}

// NewSetupHost prepares pair-setup for id with the SRP password pin (DefaultSetupPIN for iPhones);
// r supplies the SRP secret (crypto/rand if nil).
func NewSetupHost(id Identity, pin string, r io.Reader) (*SetupHost, error) {
	if err := id.check("pair-setup"); err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	return &SetupHost{id: id, pin: pin, rand: r, next: StateM2}, nil
}

// M1 returns the first message: METHOD=pair-setup, STATE=1.
func (h *SetupHost) M1() []byte {
	var x TLV8
	x.SetByte(TypeMethod, MethodPairSetup)
	x.SetByte(TypeState, StateM1)
	return x.Encode()
}

func (h *SetupHost) expect(stage string, s byte) error {
	if h.next != s {
		return fmt.Errorf("%w: %s out of order (expecting M%d)", ErrProtocol, stage, h.next)
	}
	return nil
}

// HandleM2 takes the salt and B and returns M3 (A and the proof M1).
func (h *SetupHost) HandleM2(b []byte) ([]byte, error) {
	const stage = "pair-setup M2"
	if err := h.expect(stage, StateM2); err != nil {
		return nil, err
	}
	h.next = 0
	x, err := readStep(stage, b, StateM2)
	if err != nil {
		return nil, err
	}
	salt, err := need(stage, x, TypeSalt, "SALT", 0)
	if err != nil {
		return nil, err
	}
	pubB, err := need(stage, x, TypePublicKey, "PUBLIC_KEY", 0)
	if err != nil {
		return nil, err
	}
	if h.srp, err = NewSRPClient(SRPUsername, h.pin, h.rand); err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	proof, err := h.srp.Challenge(salt, pubB)
	if err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	var out TLV8
	out.SetByte(TypeState, StateM3)
	out.Set(TypePublicKey, h.srp.A)
	out.Set(TypeProof, proof)
	h.next = StateM4
	return out.Encode(), nil
}

// HandleM4 checks the device proof and returns M5 (the host identity, encrypted).
// A wrong PIN arrives as *PeerError with ErrorAuthentication.
func (h *SetupHost) HandleM4(b []byte) ([]byte, error) {
	const stage = "pair-setup M4"
	if err := h.expect(stage, StateM4); err != nil {
		return nil, err
	}
	h.next = 0
	x, err := readStep(stage, b, StateM4)
	if err != nil {
		return nil, err
	}
	proof, err := need(stage, x, TypeProof, "PROOF", 0)
	if err != nil {
		return nil, err
	}
	if err := h.srp.Verify(proof); err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	K := h.srp.Key()
	h.kEnc = deriveKey(K, hkdfSetupEncryptSalt, hkdfSetupEncryptInfo)
	inner, err := sealIdentity(h.id, deriveKey(K, hkdfControllerSignSalt, hkdfControllerSignInfo))
	if err != nil {
		return nil, fmt.Errorf("pairing: pair-setup M5: %w", err)
	}
	var out TLV8
	out.Set(TypeEncryptedData, sealLabel(h.kEnc, nonceSetupM5, inner))
	out.SetByte(TypeState, StateM5)
	h.next = StateM6
	return out.Encode(), nil
}

// HandleM6 opens and checks the device identity; pairing is then complete.
func (h *SetupHost) HandleM6(b []byte) (*Peer, error) {
	const stage = "pair-setup M6"
	if err := h.expect(stage, StateM6); err != nil {
		return nil, err
	}
	h.next = 0
	x, err := readStep(stage, b, StateM6)
	if err != nil {
		return nil, err
	}
	ct, err := need(stage, x, TypeEncryptedData, "ENCRYPTED_DATA", 0)
	if err != nil {
		return nil, err
	}
	inner, err := openLabel(h.kEnc, nonceSetupM6, ct)
	if err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	return openIdentity(stage, inner, deriveKey(h.srp.Key(), hkdfAccessorySignSalt, hkdfAccessorySignInfo))
}

// SessionKey returns the SRP key K (64 bytes) that keys the encrypted session right after
// pair-setup (pairing.md §7.3); nil before M4 verified.
func (h *SetupHost) SessionKey() []byte {
	if h.kEnc == nil {
		return nil
	}
	return h.srp.Key()
}

// SetupDevice is the device (accessory) role of pair-setup, a pure state machine. The Trust
// prompt happens between M1 and M2 and belongs to the caller (see DeviceSession).
type SetupDevice struct {
	id   Identity
	pin  string
	rand io.Reader
	srp  *SRPServer
	kEnc []byte
	next byte
}

// NewSetupDevice prepares the device side with its identity and SRP password pin; r supplies the
// salt and SRP secret (crypto/rand if nil).
func NewSetupDevice(id Identity, pin string, r io.Reader) (*SetupDevice, error) {
	if err := id.check("pair-setup"); err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	return &SetupDevice{id: id, pin: pin, rand: r, next: StateM1}, nil
}

func (d *SetupDevice) expect(stage string, s byte) error {
	if d.next != s {
		return fmt.Errorf("%w: %s out of order (expecting M%d)", ErrProtocol, stage, d.next)
	}
	return nil
}

// HandleM1 checks the request and returns M2 (salt and B).
func (d *SetupDevice) HandleM1(b []byte) ([]byte, error) {
	const stage = "pair-setup M1"
	if err := d.expect(stage, StateM1); err != nil {
		return nil, err
	}
	d.next = 0
	x, err := readStep(stage, b, StateM1)
	if err != nil {
		return nil, err
	}
	if m, ok := x.GetByte(TypeMethod); !ok || m != MethodPairSetup {
		return nil, fmt.Errorf("%w: %s: METHOD is not pair-setup", ErrProtocol, stage)
	}
	salt := make([]byte, SRPSaltLen)
	if _, err := io.ReadFull(d.rand, salt); err != nil {
		return nil, fmt.Errorf("pairing: %s: salt: %w", stage, err)
	}
	if d.srp, err = NewSRPServer(SRPUsername, salt, SRPVerifier(salt, SRPUsername, d.pin), d.rand); err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	var out TLV8
	out.SetByte(TypeState, StateM2)
	out.Set(TypeSalt, salt)
	out.Set(TypePublicKey, d.srp.B)
	d.next = StateM3
	return out.Encode(), nil
}

// HandleM3 checks A and the host proof. On a wrong proof it returns both the M4 carrying
// ERROR=authentication (to send) and an error.
func (d *SetupDevice) HandleM3(b []byte) ([]byte, error) {
	const stage = "pair-setup M3"
	if err := d.expect(stage, StateM3); err != nil {
		return nil, err
	}
	d.next = 0
	x, err := readStep(stage, b, StateM3)
	if err != nil {
		return nil, err
	}
	pubA, err := need(stage, x, TypePublicKey, "PUBLIC_KEY", 0)
	if err != nil {
		return nil, err
	}
	proof, err := need(stage, x, TypeProof, "PROOF", 0)
	if err != nil {
		return nil, err
	}
	m2, err := d.srp.Verify(pubA, proof)
	if err != nil {
		return errorTLV(StateM4, ErrorAuthentication), fmt.Errorf("pairing: %s: %w", stage, err)
	}
	d.kEnc = deriveKey(d.srp.Key(), hkdfSetupEncryptSalt, hkdfSetupEncryptInfo)
	var out TLV8
	out.SetByte(TypeState, StateM4)
	out.Set(TypeProof, m2)
	d.next = StateM5
	return out.Encode(), nil
}

// HandleM5 opens and checks the host identity and returns M6 with the device identity and the
// host as a Peer to store. On a bad M5 it returns an M6 carrying ERROR=authentication and an error.
func (d *SetupDevice) HandleM5(b []byte) ([]byte, *Peer, error) {
	const stage = "pair-setup M5"
	if err := d.expect(stage, StateM5); err != nil {
		return nil, nil, err
	}
	d.next = 0
	x, err := readStep(stage, b, StateM5)
	if err != nil {
		return nil, nil, err
	}
	ct, err := need(stage, x, TypeEncryptedData, "ENCRYPTED_DATA", 0)
	if err != nil {
		return nil, nil, err
	}
	K := d.srp.Key()
	fail := errorTLV(StateM6, ErrorAuthentication)
	inner, err := openLabel(d.kEnc, nonceSetupM5, ct)
	if err != nil {
		return fail, nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	host, err := openIdentity(stage, inner, deriveKey(K, hkdfControllerSignSalt, hkdfControllerSignInfo))
	if err != nil {
		return fail, nil, err
	}
	sub, err := sealIdentity(d.id, deriveKey(K, hkdfAccessorySignSalt, hkdfAccessorySignInfo))
	if err != nil {
		return nil, nil, fmt.Errorf("pairing: pair-setup M6: %w", err)
	}
	var out TLV8
	out.Set(TypeEncryptedData, sealLabel(d.kEnc, nonceSetupM6, sub))
	out.SetByte(TypeState, StateM6)
	return out.Encode(), host, nil
}

// SessionKey returns K once M3 verified (nil before).
func (d *SetupDevice) SessionKey() []byte {
	if d.kEnc == nil {
		return nil
	}
	return d.srp.Key()
}
