package xpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// MaxDepth bounds container nesting on decode and encode.
const MaxDepth = 64

// ErrMalformed wraps every object decoding error.
var ErrMalformed = errors.New("xpc: malformed object")

var le = binary.LittleEndian

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

// DecodeObject decodes one XPC object that fills b exactly.
func DecodeObject(b []byte) (Value, error) {
	v, n, _, err := decodeValue(b, 0)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w: %d bytes", ErrTrailing, len(b)-n)
	}
	return v, nil
}

// EncodeObject returns the wire bytes of one XPC object.
func EncodeObject(v Value) ([]byte, error) { return appendObject(nil, v, 0) }

// decodeValue decodes the object at the start of b (which ends where its container ends).
// swallowed reports an Opaque that took every remaining byte of the container.
func decodeValue(b []byte, depth int) (v Value, n int, swallowed bool, err error) {
	if depth > MaxDepth {
		return nil, 0, false, malformed("nesting deeper than %d", MaxDepth)
	}
	if len(b) < 4 {
		return nil, 0, false, malformed("need a type code, have %d bytes", len(b))
	}
	t := Type(le.Uint32(b))
	body := b[4:]
	fixed := func(size int) error {
		if len(body) < size {
			return malformed("type %#x needs %d bytes, have %d", uint32(t), size, len(body))
		}
		return nil
	}
	switch t {
	case TypeNull:
		return Null{}, 4, false, nil
	case TypeBool:
		if err := fixed(4); err != nil {
			return nil, 0, false, err
		}
		return le.Uint32(body) != 0, 8, false, nil
	case TypeInt64, TypeUint64, TypeDouble, TypeDate:
		if err := fixed(8); err != nil {
			return nil, 0, false, err
		}
		u := le.Uint64(body)
		switch t {
		case TypeInt64:
			return int64(u), 12, false, nil
		case TypeUint64:
			return u, 12, false, nil
		case TypeDouble:
			return math.Float64frombits(u), 12, false, nil
		}
		return Date(int64(u)), 12, false, nil
	case TypeData, TypeString:
		if err := fixed(4); err != nil {
			return nil, 0, false, err
		}
		l := int(le.Uint32(body))
		if l > len(body)-4 {
			return nil, 0, false, malformed("length %d past the end (%d left)", l, len(body)-4)
		}
		span := min(pad4(l), len(body)-4)
		raw := body[4 : 4+l]
		if t == TypeData {
			return bytes.Clone(raw), 8 + span, false, nil
		}
		if l > 0 && raw[l-1] == 0 {
			raw = raw[:l-1]
		}
		return string(raw), 8 + span, false, nil
	case TypeUUID:
		if err := fixed(16); err != nil {
			return nil, 0, false, err
		}
		var u UUID
		copy(u[:], body)
		return u, 20, false, nil
	case TypeArray, TypeDictionary:
		return decodeContainer(t, body, depth)
	case TypeFileTransfer:
		if err := fixed(8); err != nil {
			return nil, 0, false, err
		}
		inner, m, sw, err := decodeValue(body[8:], depth+1)
		if err != nil {
			return nil, 0, false, err
		}
		return &FileTransfer{ID: le.Uint64(body), Value: inner}, 12 + m, sw, nil
	case TypePointer, TypeFD, TypeShmem:
		size := map[Type]int{TypePointer: PointerBodySize, TypeFD: FDBodySize, TypeShmem: ShmemBodySize}[t]
		if err := fixed(size); err != nil {
			return nil, 0, false, err
		}
		return &Opaque{Type: t, Body: bytes.Clone(body[:size])}, 4 + size, false, nil
	}
	return &Opaque{Type: t, Body: bytes.Clone(body)}, len(b), true, nil
}

// decodeContainer decodes an array or dictionary body (after its type code). An array whose
// byte_len leaves out its 4-byte count, as some host clients write it, decodes too.
func decodeContainer(t Type, b []byte, depth int) (Value, int, bool, error) {
	if len(b) < 8 {
		return nil, 0, false, malformed("container header needs 8 bytes, have %d", len(b))
	}
	byteLen := int(le.Uint32(b))
	v, n, sw, err := decodeRegion(t, b, byteLen, depth)
	if err != nil && t == TypeArray && byteLen <= len(b)-8 {
		if v2, n2, sw2, err2 := decodeRegion(t, b, byteLen+4, depth); err2 == nil {
			return v2, n2, sw2, nil
		}
	}
	return v, n, sw, err
}

// decodeRegion decodes a container whose count and items take byteLen bytes after byte_len.
func decodeRegion(t Type, b []byte, byteLen int, depth int) (Value, int, bool, error) {
	if byteLen < 4 || byteLen > len(b)-4 {
		return nil, 0, false, malformed("container byte_len %d outside 4..%d", byteLen, len(b)-4)
	}
	region := b[4 : 4+byteLen]
	count := int(le.Uint32(region))
	minItem := 4
	if t == TypeDictionary {
		minItem = 8
	}
	if count > (len(region)-4)/minItem {
		return nil, 0, false, malformed("count %d cannot fit in %d bytes", count, len(region)-4)
	}
	var d *Dict
	var arr []Value
	if t == TypeDictionary {
		d = &Dict{Entries: make([]Entry, 0, count)}
	} else {
		arr = make([]Value, 0, count)
	}
	p := 4
	for i := 0; i < count; i++ {
		var key string
		if d != nil {
			k, kn, err := decodeKey(region[p:])
			if err != nil {
				return nil, 0, false, err
			}
			key, p = k, p+kn
		}
		v, n, sw, err := decodeValue(region[p:], depth+1)
		if err != nil {
			return nil, 0, false, err
		}
		p += n
		if sw {
			if op, ok := swallower(v); ok {
				op.Rest = uint32(count - i - 1)
			}
		}
		if d != nil {
			d.Entries = append(d.Entries, Entry{Key: key, Value: v})
		} else {
			arr = append(arr, v)
		}
		if sw {
			break
		}
	}
	if p != len(region) {
		return nil, 0, false, malformed("entries end at %d but byte_len is %d", p, len(region))
	}
	if d != nil {
		return d, 8 + byteLen, false, nil
	}
	return arr, 8 + byteLen, false, nil
}

// swallower finds the Opaque that consumed the rest of a container, possibly inside a FileTransfer.
func swallower(v Value) (*Opaque, bool) {
	switch x := v.(type) {
	case *Opaque:
		return x, true
	case *FileTransfer:
		return swallower(x.Value)
	}
	return nil, false
}

// decodeKey decodes a NUL-terminated, 4-padded dictionary key.
func decodeKey(b []byte) (string, int, error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", 0, malformed("dictionary key without NUL")
	}
	n := pad4(i + 1)
	if n > len(b) {
		return "", 0, malformed("dictionary key padding past the end")
	}
	return string(b[:i]), n, nil
}

// appendPadded appends raw and zero bytes up to a multiple of 4.
func appendPadded(dst, raw []byte) []byte {
	dst = append(dst, raw...)
	for n := len(raw); n%4 != 0; n++ {
		dst = append(dst, 0)
	}
	return dst
}

// appendCString appends s, a NUL and zero bytes up to a multiple of 4.
func appendCString(dst []byte, s string) []byte {
	dst = append(dst, s...)
	dst = append(dst, 0)
	for n := len(s) + 1; n%4 != 0; n++ {
		dst = append(dst, 0)
	}
	return dst
}

func appendType(dst []byte, t Type) []byte { return le.AppendUint32(dst, uint32(t)) }

// appendObject appends the wire form of v.
func appendObject(dst []byte, v Value, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, fmt.Errorf("xpc: encode: nesting deeper than %d", MaxDepth)
	}
	switch x := v.(type) {
	case nil, Null:
		return appendType(dst, TypeNull), nil
	case bool:
		dst = appendType(dst, TypeBool)
		if x {
			return append(dst, 1, 0, 0, 0), nil
		}
		return append(dst, 0, 0, 0, 0), nil
	case int64:
		return le.AppendUint64(appendType(dst, TypeInt64), uint64(x)), nil
	case uint64:
		return le.AppendUint64(appendType(dst, TypeUint64), x), nil
	case float64:
		return le.AppendUint64(appendType(dst, TypeDouble), math.Float64bits(x)), nil
	case Date:
		return le.AppendUint64(appendType(dst, TypeDate), uint64(x)), nil
	case []byte:
		dst = le.AppendUint32(appendType(dst, TypeData), uint32(len(x)))
		return appendPadded(dst, x), nil
	case string:
		dst = le.AppendUint32(appendType(dst, TypeString), uint32(len(x)+1))
		return appendCString(dst, x), nil
	case UUID:
		return append(appendType(dst, TypeUUID), x[:]...), nil
	case []Value:
		start := len(dst)
		dst = appendType(dst, TypeArray)
		dst = le.AppendUint64(dst, 0) // byte_len and count, patched
		var err error
		for _, e := range x {
			if dst, err = appendObject(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return patchContainer(dst, start, len(x), lastRest(x)), nil
	case *Dict:
		start := len(dst)
		dst = appendType(dst, TypeDictionary)
		dst = le.AppendUint64(dst, 0)
		var err error
		var last Value
		if x != nil {
			for _, e := range x.Entries {
				dst = appendCString(dst, e.Key)
				if dst, err = appendObject(dst, e.Value, depth+1); err != nil {
					return dst, err
				}
				last = e.Value
			}
		}
		return patchContainer(dst, start, x.Len(), restOf(last)), nil
	case *FileTransfer:
		dst = le.AppendUint64(appendType(dst, TypeFileTransfer), x.ID)
		return appendObject(dst, x.Value, depth+1)
	case *Opaque:
		return append(appendType(dst, x.Type), x.Body...), nil
	}
	return dst, fmt.Errorf("%w %T", errUnsupported, v)
}

func lastRest(a []Value) uint32 {
	if len(a) == 0 {
		return 0
	}
	return restOf(a[len(a)-1])
}

func restOf(v Value) uint32 {
	if op, ok := swallower(v); ok {
		return op.Rest
	}
	return 0
}

// patchContainer writes byte_len and count of the container that starts at start.
func patchContainer(dst []byte, start, n int, rest uint32) []byte {
	le.PutUint32(dst[start+4:], uint32(len(dst)-start-8))
	le.PutUint32(dst[start+8:], uint32(n)+rest)
	return dst
}
