package xpc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, ":"); i >= 0 {
			line = line[i+1:]
		}
		clean.WriteString(strings.ReplaceAll(line, " ", ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func roundTrip(t *testing.T, wire []byte) *Message {
	t.Helper()
	m, err := DecodeMessage(wire)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if !bytes.Equal(out, wire) {
		t.Fatalf("round trip differs:\n got %x\nwant %x", out, wire)
	}
	return m
}

func TestEmptyDictFixture(t *testing.T) {
	wire := readFixture(t, "xpc_empty_dict.bin")
	if len(wire) != 44 {
		t.Fatalf("fixture is %d bytes", len(wire))
	}
	m := roundTrip(t, wire)
	if m.Flags != FlagAlwaysSet || m.Flags.Type() != TypeHeader || m.ID != 0 {
		t.Fatalf("header: flags %v id %d", m.Flags, m.ID)
	}
	d, ok := m.Body.(*Dict)
	if !ok || d.Len() != 0 {
		t.Fatalf("body %#v", m.Body)
	}
	built, err := (&Message{Flags: FlagAlwaysSet, Body: &Dict{}}).Encode()
	if err != nil || !bytes.Equal(built, wire) {
		t.Fatalf("built %x, err %v", built, err)
	}
}

func TestLaunchApplicationFixture(t *testing.T) {
	wire := readFixture(t, "xpc_dict.bin")
	if len(wire) != 1076 {
		t.Fatalf("fixture is %d bytes", len(wire))
	}
	m := roundTrip(t, wire)
	if m.Flags != FlagAlwaysSet|TypeMsg|FlagWantsReply || m.ID != 1 {
		t.Fatalf("header: flags %v id %d", m.Flags, m.ID)
	}
	d := m.Body.(*Dict)
	var keys []string
	for _, e := range d.Entries {
		keys = append(keys, e.Key)
	}
	want := []string{"CoreDevice.coreDeviceVersion", "CoreDevice.deviceIdentifier",
		"CoreDevice.CoreDeviceDDIProtocolVersion", "CoreDevice.invocationIdentifier",
		"CoreDevice.action", "CoreDevice.input", "CoreDevice.featureIdentifier"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("key order %q", keys)
	}
	ver, _ := d.Dict("CoreDevice.coreDeviceVersion")
	if n, ok := ver.Int64("originalComponentsCount"); !ok || n != 2 {
		t.Fatalf("originalComponentsCount %v %v (must stay int64)", n, ok)
	}
	comps, _ := ver.Get("components")
	if !reflect.DeepEqual(comps, []Value{uint64(348), uint64(1), uint64(0), uint64(0), uint64(0)}) {
		t.Fatalf("components %#v (must stay uint64)", comps)
	}
	if s, _ := ver.String("stringValue"); s != "348.1" {
		t.Fatalf("stringValue %q", s)
	}
	if s, _ := d.String("CoreDevice.featureIdentifier"); s != "com.apple.coredevice.feature.launchapplication" {
		t.Fatalf("featureIdentifier %q", s)
	}
	if n, ok := d.Int64("CoreDevice.CoreDeviceDDIProtocolVersion"); !ok || n != 0 {
		t.Fatalf("DDI version %v %v", n, ok)
	}
	in, _ := d.Dict("CoreDevice.input")
	opts, _ := in.Dict("options")
	if opts == nil {
		t.Fatal("no options dict")
	}
	if v, ok := opts.Get("workingDirectory"); !ok || v != (Null{}) {
		t.Fatalf("workingDirectory %#v", v)
	}
	if v, _ := opts.Bool("startStopped"); v {
		t.Fatal("startStopped should be false")
	}
	if v, _ := opts.Bool("standardIOUsesPseudoterminals"); !v {
		t.Fatal("standardIOUsesPseudoterminals should be true")
	}
}

// handshakeVector is remotexpc.md §10.3: the synthesized host Handshake.
const handshakeVector = `
0000: 92 0b b0 29 01 01 00 00 f0 00 00 00 00 00 00 00
0010: 01 00 00 00 00 00 00 00 42 37 13 42 05 00 00 00
0020: 00 f0 00 00 e0 00 00 00 05 00 00 00 4d 65 73 73
0030: 61 67 65 54 79 70 65 00 00 90 00 00 0a 00 00 00
0040: 48 61 6e 64 73 68 61 6b 65 00 00 00 4d 65 73 73
0050: 61 67 69 6e 67 50 72 6f 74 6f 63 6f 6c 56 65 72
0060: 73 69 6f 6e 00 00 00 00 00 40 00 00 07 00 00 00
0070: 00 00 00 00 55 55 49 44 00 00 00 00 00 a0 00 00
0080: 1d 70 1c 76 cf 8e 45 c7 a6 c9 d7 94 ee 85 41 1c
0090: 50 72 6f 70 65 72 74 69 65 73 00 00 00 f0 00 00
00a0: 4c 00 00 00 02 00 00 00 52 65 6d 6f 74 65 58 50
00b0: 43 56 65 72 73 69 6f 6e 46 6c 61 67 73 00 00 00
00c0: 00 40 00 00 06 00 00 00 00 00 00 01 53 65 6e 73
00d0: 69 74 69 76 65 50 72 6f 70 65 72 74 69 65 73 56
00e0: 69 73 69 62 6c 65 00 00 00 20 00 00 01 00 00 00
00f0: 53 65 72 76 69 63 65 73 00 00 00 00 00 f0 00 00
0100: 04 00 00 00 00 00 00 00`

func TestHostHandshakeVector(t *testing.T) {
	wire := unhex(t, handshakeVector)
	roundTrip(t, wire)
	u, err := ParseUUID("1d701c76-cf8e-45c7-a6c9-d794ee85411c")
	if err != nil {
		t.Fatal(err)
	}
	m := &Message{Flags: FlagAlwaysSet | TypeMsg, ID: 1, Body: NewDict(
		"MessageType", "Handshake",
		"MessagingProtocolVersion", uint64(7),
		"UUID", u,
		"Properties", NewDict(
			"RemoteXPCVersionFlags", uint64(0x0100000000000006),
			"SensitivePropertiesVisible", true),
		"Services", &Dict{},
	)}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, wire) {
		t.Fatalf("built handshake differs:\n got %x\nwant %x", out, wire)
	}
	if u.String() != "1d701c76-cf8e-45c7-a6c9-d794ee85411c" {
		t.Fatalf("uuid string %s", u)
	}
}

func TestEveryTypeRoundTrips(t *testing.T) {
	body := NewDict(
		"null", Null{}, "t", true, "f", false,
		"i", int64(-5), "u", uint64(1<<63), "d", 1.5, "date", Date(1700000000123456789),
		"data", []byte{1, 2, 3, 4, 5}, "empty", []byte{}, "s", "abc", "s4", "abcd", "s0", "",
		"uuid", UUID{1, 2, 3}, "arr", []Value{int64(1), "x", []Value{}},
		"ft", &FileTransfer{ID: 7, Value: NewDict("s", uint64(1234))},
		"ptr", &Opaque{Type: TypePointer, Body: []byte{}},
		"fd", &Opaque{Type: TypeFD, Body: []byte{9, 0, 0, 0}},
	)
	m := &Message{Flags: FlagAlwaysSet | TypeMsg | FlagIsReply, ID: 42, Body: body}
	wire, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(wire)%4 != 0 {
		t.Fatalf("wire length %d not a multiple of 4", len(wire))
	}
	got := roundTrip(t, wire)
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded\n%#v\nwant\n%#v", got.Body, m.Body)
	}
	ft, _ := got.Body.(*Dict).Get("ft")
	if n, ok := ft.(*FileTransfer).Size(); !ok || n != 1234 {
		t.Fatalf("file transfer size %d %v", n, ok)
	}
}

func TestUnknownTypeStaysOpaque(t *testing.T) {
	// A dictionary whose second of three entries has a type this codec cannot size (error,
	// 0x10000): it must swallow the rest and re-encode byte for byte.
	known, _ := EncodeObject(NewDict("a", uint64(1)))
	tail := append(le.AppendUint32([]byte("b\x00\x00\x00"), uint32(TypeError)), 0xde, 0xad, 0xbe, 0xef)
	tail = append(tail, "c\x00\x00\x00"...)
	tail = append(tail, known[:12]...) // an empty dict as c's value
	le.PutUint32(tail[len(tail)-8:], 4)
	le.PutUint32(tail[len(tail)-4:], 0)
	obj := append([]byte{}, known...)
	obj = append(obj, tail...)
	le.PutUint32(obj[4:], uint32(len(obj)-8))
	le.PutUint32(obj[8:], 3)
	v, err := DecodeObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*Dict)
	if d.Len() != 2 {
		t.Fatalf("entries %d", d.Len())
	}
	op, ok := d.Entries[1].Value.(*Opaque)
	if !ok || op.Type != TypeError || op.Rest != 1 {
		t.Fatalf("opaque %#v", d.Entries[1].Value)
	}
	out, err := EncodeObject(v)
	if err != nil || !bytes.Equal(out, obj) {
		t.Fatalf("opaque round trip:\n got %x\nwant %x (%v)", out, obj, err)
	}
}

func TestBadInputErrors(t *testing.T) {
	good := readFixture(t, "xpc_dict.bin")
	cases := map[string][]byte{
		"short header": good[:10],
		"bad magic":    append([]byte{0, 0, 0, 0}, good[4:]...),
		"truncated":    good[:len(good)-4],
		"trailing":     append(append([]byte{}, good...), 0, 0, 0, 0),
		"huge body":    append(append([]byte{}, good[:8]...), append(le.AppendUint64(nil, 1<<40), good[16:]...)...),
	}
	badPayload := append([]byte{}, good...)
	badPayload[24] = 0
	cases["payload magic"] = badPayload
	badLen := append([]byte{}, good...)
	le.PutUint32(badLen[0x24:], 0x40000)
	cases["container byte_len"] = badLen
	badCount := append([]byte{}, good...)
	le.PutUint32(badCount[0x28:], 0xffffffff)
	cases["container count"] = badCount
	for name, b := range cases {
		if _, err := DecodeMessage(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := DecodeMessage(cases["huge body"]); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge body: %v", err)
	}
	if _, err := EncodeObject(NewDict("x", 3)); err == nil {
		t.Error("encoding a Go int must fail: int64 or uint64 must be chosen")
	}
}

func TestReadMessageStream(t *testing.T) {
	a := readFixture(t, "xpc_empty_dict.bin")
	b := readFixture(t, "xpc_dict.bin")
	r := bytes.NewReader(append(append([]byte{}, a...), b...))
	for _, want := range [][]byte{a, b} {
		m, err := ReadMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := m.Encode()
		if !bytes.Equal(out, want) {
			t.Fatal("stream message differs")
		}
	}
	if _, err := ReadMessage(bytes.NewReader(b[:100])); err == nil {
		t.Fatal("short stream decoded")
	}
}

func TestFlagsString(t *testing.T) {
	cases := map[Flags]string{
		0x00000001: "HEADER", 0x00000201: "PING", 0x00400001: "HEADER|OPENS_REPLY_CHANNEL",
		0x00010101: "MSG|WANTS_REPLY", 0x00020101: "MSG|IS_REPLY", 0x00100001: "HEADER|OPENS_STREAM_TX",
		0x00200001: "HEADER|OPENS_STREAM_RX",
	}
	for f, want := range cases {
		if f.String() != want {
			t.Errorf("%#x: %q, want %q", uint32(f), f.String(), want)
		}
	}
}

// shortArrays rewrites every array's byte_len in an encoded object to leave out its 4-byte
// count, as some host clients write arrays.
func shortArrays(t *testing.T, obj []byte) []byte {
	t.Helper()
	out := bytes.Clone(obj)
	n := 0
	for i := 0; i+12 <= len(out); i += 4 {
		if Type(le.Uint32(out[i:])) != TypeArray {
			continue
		}
		bl := le.Uint32(out[i+4:])
		count := le.Uint32(out[i+8:])
		if bl < 4 || int(bl) > len(out)-i-8 || count > bl/4 {
			continue
		}
		le.PutUint32(out[i+4:], bl-4)
		n++
	}
	if n == 0 {
		t.Fatal("no array found to rewrite")
	}
	return out
}

func TestArrayWithoutCountInByteLen(t *testing.T) {
	body := NewDict(
		"arguments", []Value{},
		"env", []Value{"a", int64(2), []Value{"nested", true}},
		"after", "kept",
	)
	obj, err := EncodeObject(body)
	if err != nil {
		t.Fatal(err)
	}
	short := shortArrays(t, obj)
	if bytes.Equal(short, obj) {
		t.Fatal("rewrite changed nothing")
	}
	got, err := DecodeObject(short)
	if err != nil {
		t.Fatalf("array without its count in byte_len: %v", err)
	}
	if !reflect.DeepEqual(got, Value(body)) {
		t.Fatalf("decoded %#v, want %#v", got, body)
	}
	// A byte_len that is wrong in any other way is still refused.
	bad := bytes.Clone(obj)
	for i := 0; i+4 <= len(bad); i += 4 {
		if Type(le.Uint32(bad[i:])) == TypeArray {
			le.PutUint32(bad[i+4:], le.Uint32(bad[i+4:])+8)
			break
		}
	}
	if _, err := DecodeObject(bad); err == nil {
		t.Fatal("an array with a byte_len 8 too long decoded")
	}
}
