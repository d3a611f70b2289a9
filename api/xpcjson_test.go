package api

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/iosmux/iosmux/xpc"
)

// TestXPCJSON pins contract §3's typed rendering of every XPC value type.
func TestXPCJSON(t *testing.T) {
	u, _ := xpc.ParseUUID("74957e41-fae9-4e1c-92cc-643171ecd41b")
	d := xpc.NewDict(
		"n", xpc.Null{}, "b", true, "i", int64(-9223372036854775808), "u", uint64(18446744073709551615),
		"f", 1.5, "inf", math.Inf(-1), "t", xpc.Date(1700000000123456789), "d", []byte{0, 0xff, 'a'},
		"s", "<&\"é\x00>", "id", u, "a", []xpc.Value{int64(1), "x"},
		"ft", &xpc.FileTransfer{ID: 7, Value: xpc.NewDict("s", uint64(9))},
		"o", &xpc.Opaque{Type: xpc.TypeFD, Body: []byte{1, 2, 3, 4}, Rest: 2},
		"z", xpc.NewDict(), "y", "last")
	want := `{"type":"dictionary","value":{` +
		`"n":{"type":"null","value":null},` +
		`"b":{"type":"bool","value":true},` +
		`"i":{"type":"int64","value":-9223372036854775808},` +
		`"u":{"type":"uint64","value":18446744073709551615},` +
		`"f":{"type":"double","value":1.5},` +
		`"inf":{"type":"double","value":"-Inf"},` +
		`"t":{"type":"date","value":1700000000123456789},` +
		`"d":{"type":"data","value":"AP9h"},` +
		`"s":{"type":"string","value":"\u003c\u0026\"é\u0000\u003e"},` +
		`"id":{"type":"uuid","value":"74957e41-fae9-4e1c-92cc-643171ecd41b"},` +
		`"a":{"type":"array","value":[{"type":"int64","value":1},{"type":"string","value":"x"}]},` +
		`"ft":{"type":"fileTransfer","id":7,"value":{"type":"dictionary","value":{"s":{"type":"uint64","value":9}}}},` +
		`"o":{"type":"opaque","xpcType":45056,"rest":2,"value":"AQIDBA=="},` +
		`"z":{"type":"dictionary","value":{}},` +
		`"y":{"type":"string","value":"last"}}}`
	got := xpcJSON(d)
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) {
		t.Error("not valid JSON")
	}
}
