package pairing

import (
	"fmt"
	"math"
)

// refKey identifies a distinct back-referencable value.
type refKey struct {
	kind byte
	s    string
	n    uint64
}

// opackDecoder holds the input position and the back-reference list.
type opackDecoder struct {
	b    []byte
	off  int
	refs []any
	seen map[refKey]bool
}

// DecodeOPACK decodes one OPACK value that must span all of b.
func DecodeOPACK(b []byte) (any, error) {
	d := &opackDecoder{b: b, seen: make(map[refKey]bool)}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrOPACK, len(b)-d.off)
	}
	return v, nil
}

// take returns the next n input bytes without copying.
func (d *opackDecoder) take(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.off < n {
		return nil, fmt.Errorf("%w: need %d bytes at offset %d, have %d", ErrOPACK, n, d.off, len(d.b)-d.off)
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

// uintLE reads an n-byte little-endian unsigned integer (n ≤ 8).
func (d *opackDecoder) uintLE(n int) (uint64, error) {
	p, err := d.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(p[i])
	}
	return v, nil
}

// remember appends v to the back-reference list unless an equal value is already there.
func (d *opackDecoder) remember(k refKey, v any) {
	if !d.seen[k] {
		d.seen[k] = true
		d.refs = append(d.refs, v)
	}
}

func (d *opackDecoder) value(depth int) (any, error) {
	start := d.off
	p, err := d.take(1)
	if err != nil {
		return nil, err
	}
	tag := p[0]
	switch {
	case tag == opTrue:
		return true, nil
	case tag == opFalse:
		return false, nil
	case tag == opNull:
		return nil, nil
	case tag == opUUID:
		p, err := d.take(16)
		if err != nil {
			return nil, err
		}
		u := UUID(p)
		d.remember(refKey{kind: tag, s: string(p)}, u)
		return u, nil
	case tag == opTime:
		n, err := d.uintLE(8)
		if err != nil {
			return nil, err
		}
		d.remember(refKey{kind: tag, n: n}, Time(n))
		return Time(n), nil
	case tag >= opSmallInt && tag <= opSmallInt+smallIntMax:
		return int64(tag - opSmallInt), nil
	case tag >= opUint8 && tag <= opUint64:
		n, err := d.uintLE(1 << (tag - opUint8))
		if err != nil {
			return nil, err
		}
		var v any = int64(n)
		if n > math.MaxInt64 {
			v = n
		}
		d.remember(refKey{kind: opUint8, n: n}, v)
		return v, nil
	case tag == opFloat32:
		n, err := d.uintLE(4)
		if err != nil {
			return nil, err
		}
		v := math.Float32frombits(uint32(n))
		d.remember(refKey{kind: tag, n: n}, v)
		return v, nil
	case tag == opFloat64:
		n, err := d.uintLE(8)
		if err != nil {
			return nil, err
		}
		v := math.Float64frombits(n)
		d.remember(refKey{kind: tag, n: n}, v)
		return v, nil
	case tag >= opString && tag <= opString8+3:
		p, err := d.sized(tag, opString, opString8)
		if err != nil {
			return nil, err
		}
		s := string(p)
		d.remember(refKey{kind: opString, s: s}, s)
		return s, nil
	case tag >= opData && tag <= opData8+3:
		p, err := d.sized(tag, opData, opData8)
		if err != nil {
			return nil, err
		}
		v := append(make([]byte, 0, len(p)), p...)
		d.remember(refKey{kind: opData, s: string(p)}, v)
		return v, nil
	case tag >= opRef && tag <= opRef8+3:
		idx := uint64(tag - opRef)
		if tag >= opRef8 {
			if idx, err = d.uintLE(int(tag-opRef8) + 1); err != nil {
				return nil, err
			}
		}
		if idx >= uint64(len(d.refs)) {
			return nil, fmt.Errorf("%w: back-reference %d of %d at offset %d", ErrOPACK, idx, len(d.refs), start)
		}
		return d.refs[idx], nil
	case tag >= opArray && tag <= opArrayOpen:
		return d.array(tag, depth)
	case tag >= opDict && tag <= opDictOpen:
		return d.dict(tag, depth)
	}
	return nil, fmt.Errorf("%w: unexpected tag 0x%02x at offset %d", ErrOPACK, tag, start)
}

// sized returns the payload of a string or data item, checking its length against the input.
func (d *opackDecoder) sized(tag, inline, long byte) ([]byte, error) {
	n := uint64(tag - inline)
	if tag >= long {
		var err error
		if n, err = d.uintLE(int(tag-long) + 1); err != nil {
			return nil, err
		}
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("%w: %d-byte item at offset %d exceeds input", ErrOPACK, n, d.off)
	}
	return d.take(int(n))
}

// more reports whether a container with count (-1 = open-ended) has another element.
func (d *opackDecoder) more(count, i int) (bool, error) {
	if count >= 0 {
		return i < count, nil
	}
	if d.off >= len(d.b) {
		return false, fmt.Errorf("%w: unterminated container", ErrOPACK)
	}
	if d.b[d.off] == opTerminator {
		d.off++
		return false, nil
	}
	return true, nil
}

func (d *opackDecoder) array(tag byte, depth int) (any, error) {
	if depth >= MaxOPACKDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrOPACK, MaxOPACKDepth)
	}
	count := int(tag - opArray)
	if tag == opArrayOpen {
		count = -1
	}
	a := make([]any, 0, max(count, 0))
	for i := 0; ; i++ {
		ok, err := d.more(count, i)
		if err != nil {
			return nil, err
		}
		if !ok {
			return a, nil
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
}

func (d *opackDecoder) dict(tag byte, depth int) (any, error) {
	if depth >= MaxOPACKDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrOPACK, MaxOPACKDepth)
	}
	count := int(tag - opDict)
	if tag == opDictOpen {
		count = -1
	}
	m := make(Dict, 0, max(count, 0))
	for i := 0; ; i++ {
		ok, err := d.more(count, i)
		if err != nil {
			return nil, err
		}
		if !ok {
			return m, nil
		}
		at := d.off
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		key, isStr := k.(string)
		if !isStr {
			return nil, fmt.Errorf("%w: dictionary key at offset %d is %T, not a string", ErrOPACK, at, k)
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m = append(m, KV{Key: key, Value: v})
	}
}
