package lockdown

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"howett.net/plist"
)

// buildBplist assembles a bplist00 from object bodies using 4-byte offsets and refs.
func buildBplist(objects [][]byte, top uint64) []byte {
	b := []byte("bplist00")
	offs := make([]uint32, len(objects))
	for i, o := range objects {
		offs[i] = uint32(len(b))
		b = append(b, o...)
	}
	tableAt := len(b)
	for _, o := range offs {
		b = binary.BigEndian.AppendUint32(b, o)
	}
	tr := make([]byte, 32)
	tr[6], tr[7] = 4, 4
	binary.BigEndian.PutUint64(tr[8:], uint64(len(objects)))
	binary.BigEndian.PutUint64(tr[16:], top)
	binary.BigEndian.PutUint64(tr[24:], uint64(tableAt))
	return append(b, tr...)
}

// arrayObj encodes an array object referencing children.
func arrayObj(children ...uint32) []byte {
	o := []byte{0xA0 | byte(len(children))}
	if len(children) >= 15 {
		o = binary.BigEndian.AppendUint32([]byte{0xAF, 0x12}, uint32(len(children)))
	}
	for _, c := range children {
		o = binary.BigEndian.AppendUint32(o, c)
	}
	return o
}

// nestedBplist builds n arrays, each holding fan copies of a reference to the next.
func nestedBplist(n, fan int) []byte {
	objs := make([][]byte, n)
	for i := range n - 1 {
		refs := make([]uint32, fan)
		for j := range refs {
			refs[j] = uint32(i + 1)
		}
		objs[i] = arrayObj(refs...)
	}
	objs[n-1] = []byte{0x10, 0x07} // int 7
	return buildBplist(objs, 0)
}

// sharedDeepBplist reaches a 100-array chain first directly, then again below a 50-array chain.
func sharedDeepBplist() []byte {
	objs := [][]byte{arrayObj(1, 101)}
	for i := 1; i <= 100; i++ {
		objs = append(objs, arrayObj(uint32(i+1)))
	}
	objs[100] = arrayObj(151)
	for j := 101; j <= 150; j++ {
		objs = append(objs, arrayObj(uint32(j+1)))
	}
	objs[150] = arrayObj(1)
	return buildBplist(append(objs, []byte{0x09}), 0)
}

func TestPlistLimitsBinary(t *testing.T) {
	var v any
	// nestedBplist(n, 1) nests n-1 arrays around a leaf.
	if err := UnmarshalPlist(nestedBplist(MaxPlistDepth+1, 1), &v); err != nil {
		t.Fatalf("depth %d: %v", MaxPlistDepth, err)
	}
	for name, in := range map[string][]byte{
		"depth+1": nestedBplist(MaxPlistDepth+2, 1),
		"deep":    nestedBplist(100000, 1),
		"fan-out": nestedBplist(64, 2), // 2^63 values once shared objects are expanded
		"shared":  sharedDeepBplist(),
		"cycle":   buildBplist([][]byte{arrayObj(1), arrayObj(0)}, 0),
		"bad ref": buildBplist([][]byte{arrayObj(5)}, 0),
	} {
		start := time.Now()
		if err := UnmarshalPlist(in, &v); !errors.Is(err, ErrPlistLimits) {
			t.Errorf("%s: err = %v", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v", name, d)
		}
	}
	// Shared objects within the limits still decode.
	if err := UnmarshalPlist(nestedBplist(12, 2), &v); err != nil {
		t.Fatalf("fan-out 2^11: %v", err)
	}
	dev := DeviceAttached{MessageType: MsgAttached, DeviceID: 1, Properties: DeviceProperties{ConnectionType: "USB", DeviceID: 1, SerialNumber: "x"}}
	bin, err := plist.Marshal(DeviceList{DeviceList: []DeviceAttached{dev, dev, dev}}, plist.BinaryFormat)
	if err != nil {
		t.Fatal(err)
	}
	var list DeviceList
	if err := UnmarshalPlist(bin, &list); err != nil || len(list.DeviceList) != 3 || !reflect.DeepEqual(list.DeviceList[2], dev) {
		t.Fatalf("binary device list: %+v, %v", list, err)
	}
}

func TestPlistLimitsXML(t *testing.T) {
	doc := func(n int) []byte {
		return []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0">` +
			strings.Repeat("<array>", n) + "<true/>" + strings.Repeat("</array>", n) + "</plist>")
	}
	var v any
	if err := UnmarshalPlist(doc(MaxPlistDepth), &v); err != nil {
		t.Fatalf("depth %d: %v", MaxPlistDepth, err)
	}
	if err := UnmarshalPlist(doc(MaxPlistDepth+1), &v); !errors.Is(err, ErrPlistLimits) {
		t.Fatalf("depth %d: err = %v", MaxPlistDepth+1, err)
	}
	if err := UnmarshalPlist(bytes.Repeat([]byte("<array>"), 300000), &v); !errors.Is(err, ErrPlistLimits) {
		t.Fatalf("unterminated deep XML: err = %v", err)
	}
}
