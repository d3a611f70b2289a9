package pairing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// OPACK tags (pairing.md §10).
const (
	opTrue       = 0x01
	opFalse      = 0x02
	opTerminator = 0x03
	opNull       = 0x04
	opUUID       = 0x05
	opTime       = 0x06
	opSmallInt   = 0x08 // 0x08+n for n in 0…39
	opUint8      = 0x30 // 0x30…0x33: 1/2/4/8-byte little-endian unsigned
	opUint64     = 0x33
	// opFloat32 and opFloat64 follow pyatv (little-endian); idevice byte-swaps (big-endian). UNCONFIRMED.
	opFloat32   = 0x35
	opFloat64   = 0x36
	opString    = 0x40 // 0x40+len for len ≤ 32
	opString8   = 0x61 // 0x61…0x64: 1/2/3/4-byte little-endian length (pyatv)
	opData      = 0x70 // 0x70+len for len ≤ 32
	opData8     = 0x91 // 0x91…0x94: 1/2/3/4-byte little-endian length (pyatv)
	opRef       = 0xA0 // 0xA0+n for n in 0…32
	opRef8      = 0xC1 // 0xC1…0xC4: 1/2/3/4-byte little-endian index
	opArray     = 0xD0 // 0xD0+n for n ≤ 14
	opArrayOpen = 0xDF
	opDict      = 0xE0 // 0xE0+n for n ≤ 14
	opDictOpen  = 0xEF

	smallIntMax   = 39
	inlineLenMax  = 32
	inlineRefMax  = 32
	inlineItemMax = 14
)

// MaxOPACKDepth bounds container nesting when encoding and decoding.
const MaxOPACKDepth = 64

// ErrOPACK reports malformed or unsupported OPACK input.
var ErrOPACK = errors.New("pairing: bad OPACK")

// UUID is an OPACK UUID (tag 0x05).
type UUID [16]byte

// Time is the raw little-endian payload of an OPACK absolute time (tag 0x06); semantics UNCONFIRMED.
type Time uint64

// KV is one dictionary entry.
type KV struct {
	Key   string
	Value any
}

// Dict is an OPACK dictionary that keeps insertion order.
type Dict []KV

// Get returns the value of the first entry with key.
func (d Dict) Get(key string) (any, bool) {
	for _, kv := range d {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of the first entry with key, or appends a new entry.
func (d *Dict) Set(key string, v any) {
	for i := range *d {
		if (*d)[i].Key == key {
			(*d)[i].Value = v
			return
		}
	}
	*d = append(*d, KV{Key: key, Value: v})
}

// EncodeOPACK encodes nil, bool, non-negative integers, floats, string, []byte, UUID, Time, []any and Dict.
func EncodeOPACK(v any) ([]byte, error) {
	return appendOPACK(nil, v, 0)
}

func appendOPACK(b []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, opNull), nil
	case bool:
		if v {
			return append(b, opTrue), nil
		}
		return append(b, opFalse), nil
	case int:
		return appendInt(b, int64(v))
	case int8:
		return appendInt(b, int64(v))
	case int16:
		return appendInt(b, int64(v))
	case int32:
		return appendInt(b, int64(v))
	case int64:
		return appendInt(b, v)
	case uint:
		return appendUint(b, uint64(v)), nil
	case uint8:
		return appendUint(b, uint64(v)), nil
	case uint16:
		return appendUint(b, uint64(v)), nil
	case uint32:
		return appendUint(b, uint64(v)), nil
	case uint64:
		return appendUint(b, v), nil
	case float32:
		return binary.LittleEndian.AppendUint32(append(b, opFloat32), math.Float32bits(v)), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(b, opFloat64), math.Float64bits(v)), nil
	case string:
		return appendSized(b, opString, opString8, []byte(v))
	case []byte:
		return appendSized(b, opData, opData8, v)
	case UUID:
		return append(append(b, opUUID), v[:]...), nil
	case Time:
		return binary.LittleEndian.AppendUint64(append(b, opTime), uint64(v)), nil
	case []any:
		return appendArray(b, v, depth)
	case Dict:
		return appendDict(b, v, depth)
	}
	return nil, fmt.Errorf("%w: cannot encode %T", ErrOPACK, v)
}

func appendInt(b []byte, v int64) ([]byte, error) {
	if v < 0 {
		return nil, fmt.Errorf("%w: negative integer %d", ErrOPACK, v)
	}
	return appendUint(b, uint64(v)), nil
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= smallIntMax:
		return append(b, opSmallInt+byte(v))
	case v <= math.MaxUint8:
		return append(b, opUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.LittleEndian.AppendUint16(append(b, opUint8+1), uint16(v))
	case v <= math.MaxUint32:
		return binary.LittleEndian.AppendUint32(append(b, opUint8+2), uint32(v))
	}
	return binary.LittleEndian.AppendUint64(append(b, opUint64), v)
}

// appendSized writes a string or data item using the shortest length form.
func appendSized(b []byte, inline, long byte, p []byte) ([]byte, error) {
	n := uint64(len(p))
	switch {
	case n <= inlineLenMax:
		b = append(b, inline+byte(n))
	case n <= 0xFF:
		b = append(b, long, byte(n))
	case n <= 0xFFFF:
		b = binary.LittleEndian.AppendUint16(append(b, long+1), uint16(n))
	case n <= 0xFFFFFF:
		b = append(b, long+2, byte(n), byte(n>>8), byte(n>>16))
	case n <= 0xFFFFFFFF:
		b = binary.LittleEndian.AppendUint32(append(b, long+3), uint32(n))
	default:
		return nil, fmt.Errorf("%w: %d-byte item too long", ErrOPACK, n)
	}
	return append(b, p...), nil
}

func appendArray(b []byte, a []any, depth int) ([]byte, error) {
	if depth >= MaxOPACKDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrOPACK, MaxOPACKDepth)
	}
	open := len(a) > inlineItemMax
	if open {
		b = append(b, opArrayOpen)
	} else {
		b = append(b, opArray+byte(len(a)))
	}
	var err error
	for _, v := range a {
		if b, err = appendOPACK(b, v, depth+1); err != nil {
			return nil, err
		}
	}
	if open {
		b = append(b, opTerminator)
	}
	return b, nil
}

func appendDict(b []byte, d Dict, depth int) ([]byte, error) {
	if depth >= MaxOPACKDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrOPACK, MaxOPACKDepth)
	}
	open := len(d) > inlineItemMax
	if open {
		b = append(b, opDictOpen)
	} else {
		b = append(b, opDict+byte(len(d)))
	}
	var err error
	for _, kv := range d {
		if b, err = appendSized(b, opString, opString8, []byte(kv.Key)); err != nil {
			return nil, err
		}
		if b, err = appendOPACK(b, kv.Value, depth+1); err != nil {
			return nil, err
		}
	}
	if open {
		b = append(b, opTerminator)
	}
	return b, nil
}
