package pairing

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
)

// x25519Key reads a fresh X25519 private key from r (crypto/rand if nil).
func x25519Key(r io.Reader) (*ecdh.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(b)
}

// VerifyHost is the host role of pair-verify V-M1…V-M4 (pairing.md §6), a pure state machine.
type VerifyHost struct {
	id       Identity
	eph      *ecdh.PrivateKey
	shared   []byte
	deviceID string
	next     byte
}

// NewVerifyHost draws a fresh X25519 ephemeral key from r (crypto/rand if nil).
func NewVerifyHost(id Identity, r io.Reader) (*VerifyHost, error) {
	if err := id.check("pair-verify"); err != nil {
		return nil, err
	}
	eph, err := x25519Key(r)
	if err != nil {
		return nil, fmt.Errorf("pairing: pair-verify: ephemeral key: %w", err)
	}
	return &VerifyHost{id: id, eph: eph, next: StateM2}, nil
}

// M1 returns V-M1: STATE=1 and the host's ephemeral public key.
func (h *VerifyHost) M1() []byte {
	var x TLV8
	x.SetByte(TypeState, StateM1)
	x.Set(TypePublicKey, h.eph.PublicKey().Bytes())
	return x.Encode()
}

// HandleM2 derives the shared secret and returns V-M3 (HID and signature, encrypted).
// An ERROR (unknown host) arrives as *PeerError.
func (h *VerifyHost) HandleM2(b []byte) ([]byte, error) {
	const stage = "pair-verify M2"
	if h.next != StateM2 {
		return nil, fmt.Errorf("%w: %s out of order", ErrProtocol, stage)
	}
	h.next = 0
	x, err := readStep(stage, b, StateM2)
	if err != nil {
		return nil, err
	}
	devPub, err := need(stage, x, TypePublicKey, "PUBLIC_KEY", 32)
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().NewPublicKey(devPub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrProtocol, stage, err)
	}
	shared, err := h.eph.ECDH(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: X25519: %v", ErrProtocol, stage, err)
	}
	kPV := deriveKey(shared, hkdfVerifyEncryptSalt, hkdfVerifyEncryptInfo)
	// The device's own proof (PV-Msg02) is read for its identifier only; its signed-data layout
	// is UNCONFIRMED (pairing.md §6), so it is not checked.
	if ct, ok := x.Get(TypeEncryptedData); ok {
		if inner, err := openLabel(kPV, nonceVerifyM2, ct); err == nil {
			if sub, err := DecodeTLV8(inner); err == nil {
				if id, ok := sub.Get(TypeIdentifier); ok {
					h.deviceID = string(id)
				}
			}
		}
	}
	hostPub := h.eph.PublicKey().Bytes()
	msg := append(append(append([]byte{}, hostPub...), h.id.Identifier...), devPub...)
	var sub TLV8
	sub.Set(TypeIdentifier, []byte(h.id.Identifier))
	sub.Set(TypeSignature, ed25519.Sign(h.id.Key, msg))
	var out TLV8
	out.SetByte(TypeState, StateM3)
	out.Set(TypeEncryptedData, sealLabel(kPV, nonceVerifyM3, sub.Encode()))
	h.shared = shared
	h.next = StateM4
	return out.Encode(), nil
}

// HandleM4 checks the device's verdict; on success SharedSecret keys the session.
func (h *VerifyHost) HandleM4(b []byte) error {
	const stage = "pair-verify M4"
	if h.next != StateM4 {
		return fmt.Errorf("%w: %s out of order", ErrProtocol, stage)
	}
	h.next = 0
	if _, err := readStep(stage, b, StateM4); err != nil {
		h.shared = nil
		return err
	}
	h.next = StateDone
	return nil
}

// SharedSecret returns the X25519 secret (32 bytes) once V-M4 succeeded: it keys the encrypted
// session (§8) and is the TLS-PSK clients send in createListener.
func (h *VerifyHost) SharedSecret() []byte {
	if h.next != StateDone {
		return nil
	}
	return h.shared
}

// DeviceIdentifier is the identifier the device put in V-M2 ("" if it sent none).
func (h *VerifyHost) DeviceIdentifier() string { return h.deviceID }

// VerifyDevice is the device role of pair-verify, a pure state machine.
type VerifyDevice struct {
	id     Identity
	lookup func(hostID string) (ed25519.PublicKey, bool)
	eph    *ecdh.PrivateKey
	hostE  []byte
	shared []byte
	kPV    []byte
	hostID string
	next   byte
}

// NewVerifyDevice prepares the device side; lookup returns the stored LTPK of a paired host.
func NewVerifyDevice(id Identity, lookup func(hostID string) (ed25519.PublicKey, bool), r io.Reader) (*VerifyDevice, error) {
	if err := id.check("pair-verify"); err != nil {
		return nil, err
	}
	eph, err := x25519Key(r)
	if err != nil {
		return nil, fmt.Errorf("pairing: pair-verify: ephemeral key: %w", err)
	}
	return &VerifyDevice{id: id, lookup: lookup, eph: eph, next: StateM1}, nil
}

// HandleM1 returns V-M2: the device's ephemeral key and its encrypted identifier and signature.
func (d *VerifyDevice) HandleM1(b []byte) ([]byte, error) {
	const stage = "pair-verify M1"
	if d.next != StateM1 {
		return nil, fmt.Errorf("%w: %s out of order", ErrProtocol, stage)
	}
	d.next = 0
	x, err := readStep(stage, b, StateM1)
	if err != nil {
		return nil, err
	}
	hostPub, err := need(stage, x, TypePublicKey, "PUBLIC_KEY", 32)
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().NewPublicKey(hostPub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrProtocol, stage, err)
	}
	if d.shared, err = d.eph.ECDH(peer); err != nil {
		return errorTLV(StateM2, ErrorAuthentication), fmt.Errorf("%w: %s: X25519: %v", ErrProtocol, stage, err)
	}
	d.hostE = append([]byte{}, hostPub...)
	d.kPV = deriveKey(d.shared, hkdfVerifyEncryptSalt, hkdfVerifyEncryptInfo)
	devPub := d.eph.PublicKey().Bytes()
	// Signed data by HomeKit analogy (UNCONFIRMED, pairing.md §6): device eph || device id || host eph.
	msg := append(append(append([]byte{}, devPub...), d.id.Identifier...), hostPub...)
	var sub TLV8
	sub.Set(TypeIdentifier, []byte(d.id.Identifier))
	sub.Set(TypeSignature, ed25519.Sign(d.id.Key, msg))
	var out TLV8
	out.SetByte(TypeState, StateM2)
	out.Set(TypePublicKey, devPub)
	out.Set(TypeEncryptedData, sealLabel(d.kPV, nonceVerifyM2, sub.Encode()))
	d.next = StateM3
	return out.Encode(), nil
}

// HandleM3 authenticates the host. It always returns the V-M4 to send: success, or ERROR=
// authentication together with an error (unknown host, bad signature, tampered message).
func (d *VerifyDevice) HandleM3(b []byte) ([]byte, error) {
	const stage = "pair-verify M3"
	fail := errorTLV(StateM4, ErrorAuthentication)
	if d.next != StateM3 {
		return fail, fmt.Errorf("%w: %s out of order", ErrProtocol, stage)
	}
	d.next = 0
	x, err := readStep(stage, b, StateM3)
	if err != nil {
		return fail, err
	}
	ct, err := need(stage, x, TypeEncryptedData, "ENCRYPTED_DATA", 0)
	if err != nil {
		return fail, err
	}
	inner, err := openLabel(d.kPV, nonceVerifyM3, ct)
	if err != nil {
		return fail, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	sub, err := DecodeTLV8(inner)
	if err != nil {
		return fail, fmt.Errorf("pairing: %s: inner TLV: %w", stage, err)
	}
	hid, err := need(stage, sub, TypeIdentifier, "IDENTIFIER", 0)
	if err != nil {
		return fail, err
	}
	sig, err := need(stage, sub, TypeSignature, "SIGNATURE", ed25519.SignatureSize)
	if err != nil {
		return fail, err
	}
	ltpk, ok := d.lookup(string(hid))
	if !ok || len(ltpk) != ed25519.PublicKeySize {
		return fail, fmt.Errorf("%w: %s: host %q is not paired", ErrProtocol, stage, hid)
	}
	msg := append(append(append([]byte{}, d.hostE...), hid...), d.eph.PublicKey().Bytes()...)
	if !ed25519.Verify(ltpk, msg, sig) {
		return fail, fmt.Errorf("%w: %s: host %q signature does not verify", ErrProtocol, stage, hid)
	}
	d.hostID = string(hid)
	d.next = StateDone
	var out TLV8
	out.SetByte(TypeState, StateM4)
	return out.Encode(), nil
}

// SharedSecret returns the X25519 secret once the host is verified (nil before).
func (d *VerifyDevice) SharedSecret() []byte {
	if d.next != StateDone {
		return nil
	}
	return d.shared
}

// HostIdentifier is the verified host's identifier ("" before).
func (d *VerifyDevice) HostIdentifier() string { return d.hostID }
