package pairing

import (
	"crypto/ed25519"
	"errors"
	"fmt"
)

// ErrProtocol reports a pairing message that is malformed or out of order.
var ErrProtocol = errors.New("pairing: protocol error")

// PeerError is an ERROR item (pairing.md §9) the peer sent instead of the next step.
type PeerError struct {
	Stage string // e.g. "pair-setup M4"
	Code  byte
}

// errorNames follows go-ios's (AccessorySDK) numbering; UNCONFIRMED for CoreDevice.
var errorNames = map[byte]string{
	ErrorUnknown: "unknown", ErrorAuthentication: "authentication", ErrorBackoff: "backoff",
	ErrorUnknownPeer: "unknown peer", ErrorMaxPeers: "max peers", ErrorMaxTries: "max tries",
}

func (e *PeerError) Error() string {
	name := errorNames[e.Code]
	if name == "" {
		name = "unnamed"
	}
	return fmt.Sprintf("pairing: %s: peer sent ERROR %d (%s)", e.Stage, e.Code, name)
}

// Identity is a long-term pairing identity: the host's (HID, LTSK, M5 info) or the device's (M6).
type Identity struct {
	Identifier string             // HID or device accountID; sent and signed as UTF-8 bytes
	Key        ed25519.PrivateKey // LTSK; its public half is the LTPK
	Info       Dict               // OPACK info dictionary (pairing.md §7.2)
}

func (id Identity) check(stage string) error {
	if id.Identifier == "" || len(id.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: %s: identity needs an identifier and an Ed25519 key", ErrProtocol, stage)
	}
	return nil
}

func (id Identity) public() ed25519.PublicKey { return id.Key.Public().(ed25519.PublicKey) }

// Peer is what one side learnt about the other from pair-setup M5/M6.
type Peer struct {
	Identifier string
	PublicKey  ed25519.PublicKey
	Info       Dict
}

// errorTLV builds STATE=state, ERROR=code.
func errorTLV(state, code byte) []byte {
	var x TLV8
	x.SetByte(TypeState, state)
	x.SetByte(TypeError, code)
	return x.Encode()
}

// readStep decodes a pairing TLV, turns an ERROR item into *PeerError and checks STATE.
func readStep(stage string, b []byte, state byte) (*TLV8, error) {
	x, err := DecodeTLV8(b)
	if err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	if code, ok := x.Get(TypeError); ok {
		c := byte(0)
		if len(code) > 0 {
			c = code[0]
		}
		return nil, &PeerError{Stage: stage, Code: c}
	}
	if s, ok := x.GetByte(TypeState); !ok || s != state {
		return nil, fmt.Errorf("%w: %s: STATE is %v, want %d", ErrProtocol, stage, stateOf(x), state)
	}
	return x, nil
}

func stateOf(x *TLV8) any {
	if s, ok := x.GetByte(TypeState); ok {
		return s
	}
	return "missing"
}

// need returns the value of type t, checking its length when n > 0.
func need(stage string, x *TLV8, t byte, name string, n int) ([]byte, error) {
	v, ok := x.Get(t)
	if !ok {
		return nil, fmt.Errorf("%w: %s: no %s", ErrProtocol, stage, name)
	}
	if n > 0 && len(v) != n {
		return nil, fmt.Errorf("%w: %s: %s is %d bytes, want %d", ErrProtocol, stage, name, len(v), n)
	}
	return v, nil
}

// sealIdentity builds the M5/M6 inner TLV {IDENTIFIER, PUBLIC_KEY, SIGNATURE, INFO} signed over
// signKey || identifier || LTPK.
func sealIdentity(id Identity, signKey []byte) ([]byte, error) {
	pub := id.public()
	msg := append(append(append([]byte{}, signKey...), id.Identifier...), pub...)
	var x TLV8
	x.Set(TypeIdentifier, []byte(id.Identifier))
	x.Set(TypePublicKey, pub)
	x.Set(TypeSignature, ed25519.Sign(id.Key, msg))
	info := id.Info
	if info == nil {
		info = Dict{}
	}
	ob, err := EncodeOPACK(info)
	if err != nil {
		return nil, fmt.Errorf("pairing: info dictionary: %w", err)
	}
	x.Set(TypeInfo, ob)
	return x.Encode(), nil
}

// openIdentity parses and checks the M5/M6 inner TLV.
func openIdentity(stage string, inner, signKey []byte) (*Peer, error) {
	x, err := DecodeTLV8(inner)
	if err != nil {
		return nil, fmt.Errorf("pairing: %s: inner TLV: %w", stage, err)
	}
	id, err := need(stage, x, TypeIdentifier, "IDENTIFIER", 0)
	if err != nil {
		return nil, err
	}
	pub, err := need(stage, x, TypePublicKey, "PUBLIC_KEY", ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	sig, err := need(stage, x, TypeSignature, "SIGNATURE", ed25519.SignatureSize)
	if err != nil {
		return nil, err
	}
	msg := append(append(append([]byte{}, signKey...), id...), pub...)
	if !ed25519.Verify(pub, msg, sig) {
		return nil, fmt.Errorf("%w: %s: signature does not verify", ErrProtocol, stage)
	}
	p := &Peer{Identifier: string(id), PublicKey: append(ed25519.PublicKey{}, pub...)}
	if ob, ok := x.Get(TypeInfo); ok {
		v, err := DecodeOPACK(ob)
		if err != nil {
			return nil, fmt.Errorf("pairing: %s: INFO: %w", stage, err)
		}
		d, ok := v.(Dict)
		if !ok {
			return nil, fmt.Errorf("%w: %s: INFO is %T, not a dictionary", ErrProtocol, stage, v)
		}
		p.Info = d
	}
	return p, nil
}

// HostInfo is the M5 info dictionary clients send (pairing.md §7.2): accountID = HID, the
// host's 16-byte altIRK, the dummy btAddr/mac/serial every client sends, model and name.
func HostInfo(hid, name string, altIRK []byte) Dict {
	return Dict{
		{Key: "altIRK", Value: altIRK},
		{Key: "btAddr", Value: "11:22:33:44:55:66"},
		{Key: "mac", Value: []byte{0x11, 0x22, 0x33, 0x44, 0x55, 0x66}},
		{Key: "remotepairing_serial_number", Value: "AAAAAAAAAAAA"},
		{Key: "accountID", Value: hid},
		{Key: "model", Value: "computer-model"},
		{Key: "name", Value: name},
	}
}
