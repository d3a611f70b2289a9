package xpc

import (
	"encoding/json"
	"fmt"
	"testing"
)

// handshakeLike builds a device Handshake of about 14 KB with 62 services and 46 properties.
func handshakeLike() *Message {
	props := &Dict{}
	for i := 0; i < 46; i++ {
		props.Set(fmt.Sprintf("PropertyNumber%02d", i), fmt.Sprintf("value-%d", i))
	}
	services := &Dict{}
	for i := 0; i < 62; i++ {
		services.Set(fmt.Sprintf("com.apple.some.service.number%02d.shim.remote", i), NewDict(
			"Entitlement", "com.apple.mobile.lockdown.remote.trusted",
			"Port", fmt.Sprint(50000+i),
			"Properties", NewDict("UsesRemoteXPC", i%3 == 0, "ServiceVersion", int64(1)),
		))
	}
	u, _ := ParseUUID("1d701c76-cf8e-45c7-a6c9-d794ee85411c")
	return &Message{Flags: FlagAlwaysSet | TypeMsg, Body: NewDict(
		"MessageType", "Handshake", "MessagingProtocolVersion", uint64(7),
		"Services", services, "Properties", props, "UUID", u)}
}

func BenchmarkEncodeHandshake(b *testing.B) {
	m := handshakeLike()
	buf, _ := m.Encode()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.AppendEncode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeHandshake(b *testing.B) {
	buf, _ := handshakeLike().Encode()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMessage(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHandshakeLikeSize(t *testing.T) {
	buf, err := handshakeLike().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(buf) < 12000 || len(buf) > 16000 {
		t.Fatalf("benchmark message is %d bytes, want about 14 KB", len(buf))
	}
}

// toGo turns a value into plain Go maps and slices, for the encoding/json baseline.
func toGo(v Value) any {
	switch x := v.(type) {
	case *Dict:
		m := make(map[string]any, x.Len())
		for _, e := range x.Entries {
			m[e.Key] = toGo(e.Value)
		}
		return m
	case UUID:
		return x.String()
	}
	return v
}

// BenchmarkBaselineJSONEncode encodes the same handshake with encoding/json: the baseline the
// XPC numbers are compared with in docs/benchmarks.md.
func BenchmarkBaselineJSONEncode(b *testing.B) {
	v := toGo(handshakeLike().Body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineJSONDecode decodes the same handshake with encoding/json.
func BenchmarkBaselineJSONDecode(b *testing.B) {
	buf, _ := json.Marshal(toGo(handshakeLike().Body))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(buf, &v); err != nil {
			b.Fatal(err)
		}
	}
}
