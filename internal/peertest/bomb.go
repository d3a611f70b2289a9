package peertest

import (
	"bytes"
	"encoding/binary"
)

// PlistBomb is a small binary plist that expands when decoded: a dictionary
// {"HostID": A_levels} where A_i is an array of fan references to A_(i-1) and A_0 is one
// data object of leafBytes bytes, so it decodes to fan^levels copies of the data (a
// "billion laughs" for plists). levels×fan stays small: the file is a few hundred bytes.
func PlistBomb(levels, fan, leafBytes int) []byte {
	var b bytes.Buffer
	b.WriteString("bplist00")
	var offsets []int
	obj := func(p []byte) int {
		offsets = append(offsets, b.Len())
		b.Write(p)
		return len(offsets) - 1
	}
	leaf := []byte{0x4F, 0x11, byte(leafBytes >> 8), byte(leafBytes)}
	leaf = append(leaf, bytes.Repeat([]byte{0x5a}, leafBytes)...)
	prev := obj(leaf)
	for range levels {
		arr := []byte{0xA0 | byte(fan)}
		for range fan {
			arr = append(arr, byte(prev))
		}
		prev = obj(arr)
	}
	key := obj(append([]byte{0x56}, "HostID"...))
	top := obj([]byte{0xD1, byte(key), byte(prev)})
	table := b.Len()
	for _, o := range offsets {
		binary.Write(&b, binary.BigEndian, uint16(o))
	}
	trailer := make([]byte, 32)
	trailer[6], trailer[7] = 2, 1 // offset size, reference size
	binary.BigEndian.PutUint64(trailer[8:], uint64(len(offsets)))
	binary.BigEndian.PutUint64(trailer[16:], uint64(top))
	binary.BigEndian.PutUint64(trailer[24:], uint64(table))
	b.Write(trailer)
	return b.Bytes()
}
