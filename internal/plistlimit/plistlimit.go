// Package plistlimit bounds what decoding a plist can cost before a plist library sees it.
package plistlimit

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
)

// MaxDepth bounds container nesting.
const MaxDepth = 128

// MaxValues is the default bound on the values a binary plist may expand to once shared
// objects are copied (see Check for how values are counted).
const MaxValues = 1 << 16

// ErrLimits reports a plist nested too deeply, expanding too far, or with a malformed object graph.
var ErrLimits = errors.New("plist exceeds decoding limits")

// Check rejects a plist nested deeper than MaxDepth or whose binary form expands,
// once shared objects are copied, past maxValues units: a container or number counts 1, a
// string or data object 1 per started 64 bytes.
func Check(data []byte, maxValues uint64) error {
	if bytes.HasPrefix(data, []byte("bplist")) {
		return checkBplist(data, maxValues)
	}
	return checkXMLDepth(data)
}

// checkXMLDepth bounds element nesting; tokenizer errors are left to the plist parser.
func checkXMLDepth(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	for {
		tok, err := d.RawToken()
		if err != nil {
			return nil
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth++; depth > MaxDepth+2 { // <plist> root and leaf elements
				return fmt.Errorf("%w: XML nesting over %d", ErrLimits, MaxDepth)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// bplistGraph walks the container objects of a binary plist.
type bplistGraph struct {
	data                []byte
	refSize, offSize    int
	numObjects, tableAt uint64
	maxNodes            uint64
	state               map[uint64]bplistNode
}

// bplistNode is the memoised height and expanded size of one object (height 0 = in progress).
type bplistNode struct {
	height int
	nodes  uint64
}

// checkBplist bounds the height and expanded size of the object graph reachable from the top object.
func checkBplist(data []byte, maxNodes uint64) error {
	if len(data) < 40 {
		return nil // the parser rejects it
	}
	tr := data[len(data)-32:]
	g := &bplistGraph{
		data:       data,
		offSize:    int(tr[6]),
		refSize:    int(tr[7]),
		numObjects: binary.BigEndian.Uint64(tr[8:]),
		tableAt:    binary.BigEndian.Uint64(tr[24:]),
		maxNodes:   maxNodes,
		state:      make(map[uint64]bplistNode),
	}
	if g.offSize < 1 || g.offSize > 8 || g.refSize < 1 || g.refSize > 8 {
		return fmt.Errorf("%w: bad trailer sizes", ErrLimits)
	}
	if g.tableAt > uint64(len(data)) || g.numObjects > (uint64(len(data))-g.tableAt)/uint64(g.offSize) {
		return fmt.Errorf("%w: offset table out of range", ErrLimits)
	}
	_, err := g.walk(binary.BigEndian.Uint64(tr[16:]), 1)
	return err
}

// leafBytes is the payload length of a data (0x4) or string (0x5, 0x6) object at off, as its
// header claims (bounded by the input's length), or 0 for other kinds.
func (g *bplistGraph) leafBytes(off uint64) uint64 {
	tag := g.data[off]
	kind := tag >> 4
	if kind < 0x4 || kind > 0x6 {
		return 0
	}
	n := uint64(tag & 0x0F)
	if n == 0x0F {
		start := off + 1
		if start >= uint64(len(g.data)) || g.data[start]>>4 != 0x1 || g.data[start]&0x0F > 3 {
			return 0
		}
		v, ok := g.uint(start+1, 1<<(g.data[start]&0x0F))
		if !ok {
			return 0
		}
		n = v
	}
	if kind == 0x6 {
		n *= 2
	}
	return min(n, uint64(len(g.data)))
}

// uint reads an n-byte big-endian unsigned integer at off.
func (g *bplistGraph) uint(off uint64, n int) (uint64, bool) {
	if off > uint64(len(g.data)) || uint64(n) > uint64(len(g.data))-off {
		return 0, false
	}
	var v uint64
	for _, c := range g.data[off : off+uint64(n)] {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// walk returns the expanded size of object idx found at nesting depth.
func (g *bplistGraph) walk(idx uint64, depth int) (bplistNode, error) {
	bad := func(what string) (bplistNode, error) {
		return bplistNode{}, fmt.Errorf("%w: %s at object %d", ErrLimits, what, idx)
	}
	if depth > MaxDepth+1 {
		return bad("nesting too deep")
	}
	if idx >= g.numObjects {
		return bad("reference out of range")
	}
	if n, ok := g.state[idx]; ok {
		if n.height == 0 {
			return bad("cycle")
		}
		if depth+n.height > MaxDepth+2 {
			return bad("nesting too deep")
		}
		return n, nil
	}
	off, ok := g.uint(g.tableAt+idx*uint64(g.offSize), g.offSize)
	if !ok || off >= uint64(len(g.data)) {
		return bad("offset out of range")
	}
	tag := g.data[off]
	kind := tag >> 4
	if kind != 0xA && kind != 0xD {
		n := bplistNode{height: 1, nodes: 1 + g.leafBytes(off)/64}
		g.state[idx] = n
		return n, nil
	}
	count, start := uint64(tag&0x0F), off+1
	if count == 0x0F {
		if start >= uint64(len(g.data)) || g.data[start]>>4 != 0x1 || g.data[start]&0x0F > 3 {
			return bad("bad container count")
		}
		size := 1 << (g.data[start] & 0x0F)
		if count, ok = g.uint(start+1, size); !ok {
			return bad("bad container count")
		}
		start += 1 + uint64(size)
	}
	if kind == 0xD {
		if count > uint64(len(g.data)) {
			return bad("container too long")
		}
		count *= 2
	}
	if count > uint64(len(g.data))/uint64(g.refSize) || start+count*uint64(g.refSize) > uint64(len(g.data)) {
		return bad("container too long")
	}
	g.state[idx] = bplistNode{}
	n := bplistNode{height: 1, nodes: 1}
	for i := range count {
		child, _ := g.uint(start+i*uint64(g.refSize), g.refSize)
		c, err := g.walk(child, depth+1)
		if err != nil {
			return bplistNode{}, err
		}
		n.height = max(n.height, c.height+1)
		if n.nodes += c.nodes; n.nodes > g.maxNodes {
			return bad("expands to too many values")
		}
	}
	g.state[idx] = n
	return n, nil
}
