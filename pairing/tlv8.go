package pairing

import (
	"errors"
	"fmt"
)

// TLV8 item types (pairing.md §9).
const (
	TypeMethod           byte = 0x00
	TypeIdentifier       byte = 0x01
	TypeSalt             byte = 0x02
	TypePublicKey        byte = 0x03
	TypeProof            byte = 0x04
	TypeEncryptedData    byte = 0x05
	TypeState            byte = 0x06
	TypeError            byte = 0x07
	TypeRetryDelay       byte = 0x08
	TypeCertificate      byte = 0x09
	TypeSignature        byte = 0x0A
	TypePermissions      byte = 0x0B
	TypeFragmentData     byte = 0x0C
	TypeFragmentLast     byte = 0x0D
	TypeSessionID        byte = 0x0E
	TypeTTL              byte = 0x0F
	TypeExtraData        byte = 0x10
	TypeInfo             byte = 0x11
	TypeACL              byte = 0x12
	TypeFlags            byte = 0x13
	TypeValidationData   byte = 0x14
	TypeMFiAuthToken     byte = 0x15
	TypeMFiProductType   byte = 0x16
	TypeSerialNumber     byte = 0x17
	TypeMFiAuthTokenUUID byte = 0x18
	TypeAppFlags         byte = 0x19
	TypeOwnershipProof   byte = 0x1A
	TypeSetupCodeType    byte = 0x1B
	TypeProductionData   byte = 0x1C
	TypeAppInfo          byte = 0x1D
	TypeSeparator        byte = 0xFF
)

// METHOD values.
const (
	MethodPairSetup    byte = 0
	MethodMFiPairSetup byte = 1
	MethodPairVerify   byte = 2
)

// STATE values (pair-verify uses M1…M4).
const (
	StateM1   byte = 1
	StateM2   byte = 2
	StateM3   byte = 3
	StateM4   byte = 4
	StateM5   byte = 5
	StateM6   byte = 6
	StateDone byte = 7 // named by go-ios only
)

// ERROR values in go-ios (AccessorySDK) numbering; UNCONFIRMED: appium/HomeKit number 4…7 differently.
const (
	ErrorUnknown        byte = 1
	ErrorAuthentication byte = 2
	ErrorBackoff        byte = 3
	ErrorUnknownPeer    byte = 4
	ErrorMaxPeers       byte = 5
	ErrorMaxTries       byte = 6
)

// MaxTLVFragment is the largest value carried by one TLV8 item.
const MaxTLVFragment = 255

// ErrTLVTruncated reports a TLV8 item running past the end of the input.
var ErrTLVTruncated = errors.New("pairing: truncated TLV8 item")

// tlvItem is one logical (reassembled) TLV8 value.
type tlvItem struct {
	typ byte
	val []byte
}

// TLV8 is an ordered set of TLV8 values, one per type, in first-appearance order.
type TLV8 struct {
	items []tlvItem
}

// Set stores v (not copied) under type t, replacing any earlier value in place.
func (x *TLV8) Set(t byte, v []byte) {
	for i := range x.items {
		if x.items[i].typ == t {
			x.items[i].val = v
			return
		}
	}
	x.items = append(x.items, tlvItem{typ: t, val: v})
}

// SetByte stores the one-byte value v under type t.
func (x *TLV8) SetByte(t, v byte) { x.Set(t, []byte{v}) }

// Get returns the value stored under type t.
func (x *TLV8) Get(t byte) ([]byte, bool) {
	for _, it := range x.items {
		if it.typ == t {
			return it.val, true
		}
	}
	return nil, false
}

// GetByte returns the value under type t if it is exactly one byte long.
func (x *TLV8) GetByte(t byte) (byte, bool) {
	v, ok := x.Get(t)
	if !ok || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

// Types returns the stored types in order.
func (x *TLV8) Types() []byte {
	ts := make([]byte, len(x.items))
	for i, it := range x.items {
		ts[i] = it.typ
	}
	return ts
}

// Encode serialises the values in order, splitting values over 255 bytes into adjacent items.
func (x *TLV8) Encode() []byte {
	n := 0
	for _, it := range x.items {
		n += len(it.val) + 2*max(1, (len(it.val)+MaxTLVFragment-1)/MaxTLVFragment)
	}
	out := make([]byte, 0, n)
	for _, it := range x.items {
		v := it.val
		for {
			chunk := v[:min(len(v), MaxTLVFragment)]
			out = append(out, it.typ, byte(len(chunk)))
			out = append(out, chunk...)
			v = v[len(chunk):]
			if len(v) == 0 {
				break
			}
		}
	}
	return out
}

// DecodeTLV8 parses b, concatenating all items of the same type in first-appearance order.
func DecodeTLV8(b []byte) (*TLV8, error) {
	x := &TLV8{}
	idx := make(map[byte]int)
	for off := 0; off < len(b); {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("%w: header at offset %d", ErrTLVTruncated, off)
		}
		t, n := b[off], int(b[off+1])
		off += 2
		if len(b)-off < n {
			return nil, fmt.Errorf("%w: type 0x%02x needs %d bytes, %d left", ErrTLVTruncated, t, n, len(b)-off)
		}
		v := b[off : off+n]
		off += n
		if i, ok := idx[t]; ok {
			x.items[i].val = append(x.items[i].val, v...)
			continue
		}
		idx[t] = len(x.items)
		x.items = append(x.items, tlvItem{typ: t, val: append(make([]byte, 0, n), v...)})
	}
	return x, nil
}
