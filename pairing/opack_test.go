package pairing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// ideviceVector is test-vectors.md §7.1.
const ideviceVector = `
e746616c7449524b80e9e82dc06a49796b566f540019b1c77b46627441646472
5131313a32323a33333a34343a35353a3636436d6163761122334455665b7265
6d6f746570616972696e675f73657269616c5f6e756d6265724c414141414141
414141414141496163636f756e744944486c6f6c7373737373456d6f64656c4e
636f6d70757465722d6d6f64656c446e616d6546726565656565`

func ideviceDict(t *testing.T) Dict {
	return Dict{
		{"altIRK", unhex(t, "e9e82dc06a49796b566f540019b1c77b")},
		{"btAddr", "11:22:33:44:55:66"},
		{"mac", unhex(t, "112233445566")},
		{"remotepairing_serial_number", "AAAAAAAAAAAA"},
		{"accountID", "lolsssss"},
		{"model", "computer-model"},
		{"name", "reeeee"},
	}
}

func TestOPACKIdeviceVector(t *testing.T) {
	want := unhex(t, ideviceVector)
	if len(want) != 154 {
		t.Fatalf("vector is %d bytes", len(want))
	}
	got, err := EncodeOPACK(ideviceDict(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got %x\nwant %x", got, want)
	}
	v, err := DecodeOPACK(want)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v, ideviceDict(t)) {
		t.Fatalf("decode = %#v", v)
	}
	if s, ok := v.(Dict).Get("model"); !ok || s != "computer-model" {
		t.Fatalf("Get(model) = %v, %v", s, ok)
	}
}

func TestOPACKSmallVectors(t *testing.T) {
	seq := make([]byte, 16)
	for i := range seq {
		seq[i] = byte(i)
	}
	cases := []struct {
		in  any
		out any // decoded form; nil means same as in
		hex string
	}{
		{Dict{}, nil, "e0"},
		{Dict{{"key", "value"}}, nil, "e1436b65794576616c7565"},
		{Dict{{"key", []byte{0xcd, 0xff, 0xab}}}, nil, "e1436b657973cdffab"},
		{"", nil, "40"},
		{strings.Repeat("a", 32), nil, "60" + strings.Repeat("61", 32)},
		{strings.Repeat("a", 33), nil, "6121" + strings.Repeat("61", 33)},
		{seq, nil, "80000102030405060708090a0b0c0d0e0f"},
		{0, int64(0), "08"},
		{39, int64(39), "2f"},
		{40, int64(40), "3028"},
		{0x1234, int64(0x1234), "313412"},
		{true, nil, "01"},
		{false, nil, "02"},
		{nil, nil, "04"},
	}
	for _, c := range cases {
		enc, err := EncodeOPACK(c.in)
		if err != nil {
			t.Fatalf("%#v: %v", c.in, err)
		}
		if got := hex.EncodeToString(enc); got != c.hex {
			t.Errorf("encode %#v = %s, want %s", c.in, got, c.hex)
		}
		want := c.out
		if want == nil {
			want = c.in
		}
		v, err := DecodeOPACK(enc)
		if err != nil || !reflect.DeepEqual(v, want) {
			t.Errorf("decode %s = %#v, %v; want %#v", c.hex, v, err, want)
		}
	}
}

func TestOPACKScalarsRoundTrip(t *testing.T) {
	u := UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	cases := []struct {
		in   any
		out  any
		want string // hex prefix
	}{
		{uint8(200), int64(200), "30c8"},
		{uint32(0x10000), int64(0x10000), "3200000100"},
		{int64(1) << 40, int64(1) << 40, "330000000000010000"},
		{uint64(math.MaxUint64), uint64(math.MaxUint64), "33ffffffffffffffff"},
		{float32(1.5), float32(1.5), "350000c03f"},
		{2.5, 2.5, "360000000000000440"},
		{u, u, "05" + hex.EncodeToString(u[:])},
		{Time(0x0102030405060708), Time(0x0102030405060708), "060807060504030201"},
		{strings.Repeat("b", 256), strings.Repeat("b", 256), "620001"},
		{bytes.Repeat([]byte{9}, 33), bytes.Repeat([]byte{9}, 33), "9121"},
		{bytes.Repeat([]byte{9}, 70000), bytes.Repeat([]byte{9}, 70000), "937011010909"},
		{[]any{}, []any{}, "d0"},
		{[]any{1, "x", nil}, []any{int64(1), "x", nil}, "d309417804"},
	}
	for _, c := range cases {
		enc, err := EncodeOPACK(c.in)
		if err != nil {
			t.Fatalf("%T: %v", c.in, err)
		}
		if !strings.HasPrefix(hex.EncodeToString(enc), c.want) {
			t.Errorf("encode %T = %.40x…, want prefix %s", c.in, enc, c.want)
		}
		v, err := DecodeOPACK(enc)
		if err != nil || !reflect.DeepEqual(v, c.out) {
			t.Errorf("decode %.40x… = %v (%T), %v", enc, v, v, err)
		}
	}
}

func TestOPACKLargeContainers(t *testing.T) {
	var a []any
	var d Dict
	for i := range 15 {
		a = append(a, int64(i))
		d = append(d, KV{string(rune('a' + i)), int64(i)})
	}
	enc, err := EncodeOPACK(a)
	if err != nil || enc[0] != 0xdf || enc[len(enc)-1] != 0x03 {
		t.Fatalf("array encoding %x, %v", enc, err)
	}
	if v, err := DecodeOPACK(enc); err != nil || !reflect.DeepEqual(v, a) {
		t.Fatalf("array decode %v, %v", v, err)
	}
	enc, err = EncodeOPACK(d)
	if err != nil || enc[0] != 0xef || enc[len(enc)-1] != 0x03 {
		t.Fatalf("dict encoding %x, %v", enc, err)
	}
	if v, err := DecodeOPACK(enc); err != nil || !reflect.DeepEqual(v, d) {
		t.Fatalf("dict decode %v, %v", v, err)
	}
}

func TestOPACKDecodeForms(t *testing.T) {
	cases := []struct {
		hex  string
		want any
	}{
		// Open-ended containers.
		{"df0809 03", []any{int64(0), int64(1)}},
		{"ef 416b 01 03", Dict{{"k", true}}},
		// Longer length forms.
		{"6203006162 63", "abc"},
		{"630300006162 63", "abc"},
		{"64030000006162 63", "abc"},
		{"9202000102", []byte{1, 2}},
		{"940100000007", []byte{7}},
		// Back-references: inline index and 1…4-byte LE index.
		{"d4 4161 a0 3028 a1", []any{"a", "a", int64(40), int64(40)}},
		{"d3 7101 c100 c20000", []any{[]byte{1}, []byte{1}, []byte{1}}},
		{"d2 4161 c400000000", []any{"a", "a"}},
		// Keys may be back-references; repeated values are not re-listed.
		{"e2 416b 4176 a0 a1", Dict{{"k", "v"}, {"k", "v"}}},
		{"d4 4161 4161 4162 a1", []any{"a", "a", "b", "b"}},
		// Small ints, bools, null and containers are not referencable.
		{"d4 09 01 4161 a0", []any{int64(1), true, "a", "a"}},
		// Non-canonical integer forms.
		{"3005", int64(5)},
		{"33ffffffffffffff7f", int64(math.MaxInt64)},
	}
	for _, c := range cases {
		v, err := DecodeOPACK(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(v, c.want) {
			t.Errorf("%s: got %#v, %v; want %#v", c.hex, v, err, c.want)
		}
	}
}

func TestOPACKDecodeErrors(t *testing.T) {
	bad := []string{
		"",                                                   // empty
		"03",                                                 // bare terminator
		"d103",                                               // terminator inside fixed array
		"00", "07", "34", "37", "65", "95", "c5", "f0", "ff", // unknown tags
		"0808",           // trailing bytes
		"05 0102",        // short UUID
		"06 01",          // short time
		"31 01",          // short int
		"35 0000",        // short float32
		"43 6162",        // short string
		"61 05 6162",     // declared length beyond input
		"64 ffffffff 61", // huge declared length
		"94 ffffffff",    // huge declared data length
		"a0",             // back-reference to empty list
		"d2 4161 a1",     // back-reference out of range
		"c4 ffffffff",    // huge back-reference index
		"df 08",          // unterminated array
		"ef 416b 08",     // unterminated dict
		"e1 08 08",       // non-string key
		"e1 d0 08",       // container key
		"e1 416b",        // missing value
		"d2 08",          // short array
	}
	for _, s := range bad {
		if _, err := DecodeOPACK(unhex(t, s)); !errors.Is(err, ErrOPACK) {
			t.Errorf("%q: err = %v", s, err)
		}
	}
}

func TestOPACKDepth(t *testing.T) {
	nest := func(n int) []byte {
		return append(bytes.Repeat([]byte{0xd1}, n), 0x08)
	}
	if _, err := DecodeOPACK(nest(MaxOPACKDepth)); err != nil {
		t.Fatalf("depth %d: %v", MaxOPACKDepth, err)
	}
	if _, err := DecodeOPACK(nest(MaxOPACKDepth + 1)); !errors.Is(err, ErrOPACK) {
		t.Fatalf("depth %d: err = %v", MaxOPACKDepth+1, err)
	}
	if _, err := DecodeOPACK(bytes.Repeat([]byte{0xdf}, 1<<20)); !errors.Is(err, ErrOPACK) {
		t.Fatalf("deep open arrays: err = %v", err)
	}
	var v any = int64(0)
	for range MaxOPACKDepth {
		v = []any{v}
	}
	if _, err := EncodeOPACK(v); err != nil {
		t.Fatalf("encode depth %d: %v", MaxOPACKDepth, err)
	}
	if _, err := EncodeOPACK([]any{v}); !errors.Is(err, ErrOPACK) {
		t.Fatalf("encode depth %d: err = %v", MaxOPACKDepth+1, err)
	}
	cyc := []any{nil}
	cyc[0] = cyc
	if _, err := EncodeOPACK(cyc); !errors.Is(err, ErrOPACK) {
		t.Fatalf("cyclic: err = %v", err)
	}
}

func TestOPACKEncodeErrors(t *testing.T) {
	for _, v := range []any{-1, int8(-5), struct{}{}, map[string]any{}, []string{"a"}, Dict{{"k", make(chan int)}}} {
		if _, err := EncodeOPACK(v); !errors.Is(err, ErrOPACK) {
			t.Errorf("%T: err = %v", v, err)
		}
	}
}

func TestDictSet(t *testing.T) {
	var d Dict
	d.Set("a", 1)
	d.Set("b", 2)
	d.Set("a", 3)
	if !reflect.DeepEqual(d, Dict{{"a", 3}, {"b", 2}}) {
		t.Fatalf("d = %v", d)
	}
	if _, ok := d.Get("c"); ok {
		t.Fatal("Get(c) found")
	}
}
