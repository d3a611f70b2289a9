package pairing

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
)

// Message kinds inside an Envelope.
const (
	KindRequest   = "request"
	KindResponse  = "response"
	KindEvent     = "event"
	KindEncrypted = "streamEncrypted"
)

// Event and request names (pairing.md §4.4, §11).
const (
	EventPairingData      = "pairingData"
	EventPairVerifyFailed = "pairVerifyFailed"
	EventAwaitingConsent  = "awaitingUserConsent"
	EventPairingRejected  = "pairingRejectedWithError"
	RequestHandshake      = "handshake"
	RequestCreateListener = "createListener"
	RequestRemoteUnlock   = "createRemoteUnlockKey"
	KindSetup             = "setupManualPairing"
	KindVerify            = "verifyManualPairing"
	// WireProtocolVersion is what hosts send in the handshake.
	WireProtocolVersion = 19
)

// Obj is a JSON-like dictionary of the control channel.
type Obj = map[string]any

// PlainRequest is message.plain._0.request._0.<name>._0 = args.
func PlainRequest(name string, args Obj) Obj {
	return Obj{"plain": Obj{"_0": Obj{KindRequest: Obj{"_0": Obj{name: Obj{"_0": args}}}}}}
}

// PlainResponse is message.plain._0.response._1.<name>._0 = result.
func PlainResponse(name string, result Obj) Obj {
	return Obj{"plain": Obj{"_0": Obj{KindResponse: Obj{"_1": Obj{name: Obj{"_0": result}}}}}}
}

// PlainEvent is message.plain._0.event._0.<name> = {"_0": payload}, or {} when payload is nil.
func PlainEvent(name string, payload Obj) Obj {
	v := Obj{}
	if payload != nil {
		v = Obj{"_0": payload}
	}
	return Obj{"plain": Obj{"_0": Obj{KindEvent: Obj{"_0": Obj{name: v}}}}}
}

// EncryptedMessage is message.streamEncrypted._0 = ciphertext.
func EncryptedMessage(ct []byte) Obj {
	return Obj{KindEncrypted: Obj{"_0": ct}}
}

// PairingData is the payload of a pairingData event.
func PairingData(tlv []byte, kind string, start bool, sendingHost string) Obj {
	o := Obj{"data": tlv, "kind": kind, "startNewSession": start}
	if sendingHost != "" {
		o["sendingHost"] = sendingHost
	}
	return o
}

// Parsed is a message taken apart: its kind, the request/response/event name, and its body
// (the "_0" payload, or the whole value when it has none) or ciphertext.
type Parsed struct {
	Kind   string
	Name   string
	Body   Obj
	Cipher []byte
}

func obj(v any, where string) (Obj, error) {
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %T, not a dictionary", ErrFrame, where, v)
	}
	return o, nil
}

// only returns the single key of o.
func only(o Obj, where string) (string, any, error) {
	if len(o) != 1 {
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "", nil, fmt.Errorf("%w: %s has keys %v, want exactly one", ErrFrame, where, keys)
	}
	for k, v := range o {
		return k, v, nil
	}
	return "", nil, nil
}

func field(o Obj, key, where string) (Obj, error) {
	v, ok := o[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %q", ErrFrame, where, key)
	}
	return obj(v, where+"."+key)
}

// ParseMessage takes apart an envelope's message.
func ParseMessage(m Obj) (Parsed, error) {
	if enc, ok := m[KindEncrypted]; ok {
		eo, err := obj(enc, KindEncrypted)
		if err != nil {
			return Parsed{}, err
		}
		ct, err := Bytes(eo["_0"])
		if err != nil {
			return Parsed{}, fmt.Errorf("%w: streamEncrypted._0: %v", ErrFrame, err)
		}
		return Parsed{Kind: KindEncrypted, Cipher: ct}, nil
	}
	plain, err := field(m, "plain", "message")
	if err != nil {
		return Parsed{}, err
	}
	inner, err := field(plain, "_0", "plain")
	if err != nil {
		return Parsed{}, err
	}
	kind, kv, err := only(inner, "plain._0")
	if err != nil {
		return Parsed{}, err
	}
	ko, err := obj(kv, kind)
	if err != nil {
		return Parsed{}, err
	}
	pos := "_0"
	if kind == KindResponse {
		pos = "_1"
	} else if kind != KindRequest && kind != KindEvent {
		return Parsed{}, fmt.Errorf("%w: unknown plain kind %q", ErrFrame, kind)
	}
	named, err := field(ko, pos, kind)
	if err != nil {
		return Parsed{}, err
	}
	name, nv, err := only(named, kind+"."+pos)
	if err != nil {
		return Parsed{}, err
	}
	no, err := obj(nv, name)
	if err != nil {
		return Parsed{}, err
	}
	body := no
	if b, ok := no["_0"]; ok {
		if body, err = obj(b, name+"._0"); err != nil {
			return Parsed{}, err
		}
	}
	return Parsed{Kind: kind, Name: name, Body: body}, nil
}

// Bytes reads a byte string: []byte (RemoteXPC data) or a base64 string (JSON).
func Bytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case string:
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("bad base64: %v", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("byte string is %T", v)
	}
}

// Bool reads a boolean, false if absent or not a bool.
func Bool(v any) bool { b, _ := v.(bool); return b }

// Uint reads a non-negative integer from a JSON number or a Go integer.
func Uint(v any) (uint64, bool) {
	switch v := v.(type) {
	case json.Number:
		var u uint64
		if _, err := fmt.Sscan(v.String(), &u); err != nil {
			return 0, false
		}
		return u, true
	case uint64:
		return v, true
	case int64:
		return uint64(v), v >= 0
	case int:
		return uint64(v), v >= 0
	case float64:
		return uint64(v), v >= 0 && v == float64(uint64(v))
	}
	return 0, false
}
