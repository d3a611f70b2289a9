package discovery

import (
	"encoding/base64"
	"testing"
)

// TestSipHash24Vectors checks the reference vectors of the SipHash paper (key 00..0f, message
// 00..len-1).
func TestSipHash24Vectors(t *testing.T) {
	var k [16]byte
	for i := range k {
		k[i] = byte(i)
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, c := range []struct {
		n    int
		want uint64
	}{{0, 0x726fdb47dd0e0e31}, {1, 0x74f839c593dc67fd}, {8, 0x93f5f5799a932462}, {15, 0xa129ca6149be45e5}} {
		if got := SipHash24(k, msg[:c.n]); got != c.want {
			t.Errorf("SipHash24(%d bytes) = %#x, want %#x", c.n, got, c.want)
		}
	}
}

// TestAuthTag: the tag is the first six little-endian bytes of the SipHash, reversed, and only
// the right altIRK and identifier match it.
func TestAuthTag(t *testing.T) {
	var irk [16]byte
	for i := range irk {
		irk[i] = byte(i)
	}
	id := "\x00\x01\x02\x03\x04\x05\x06\x07" // the 8-byte vector: 62 24 93 9a 79 f5 f5 93 (LE)
	tag := AuthTag(irk[:], id)
	raw, _ := base64.StdEncoding.DecodeString(tag)
	want := []byte{0xf5, 0x79, 0x9a, 0x93, 0x24, 0x62}
	if string(raw) != string(want) {
		t.Fatalf("AuthTag = % x, want % x", raw, want)
	}
	if !MatchAuthTag(irk[:], id, tag) {
		t.Fatal("own tag does not match")
	}
	other := irk
	other[0] ^= 1
	for name, ok := range map[string]bool{
		"other irk":        MatchAuthTag(other[:], id, tag),
		"other identifier": MatchAuthTag(irk[:], id+"x", tag),
		"short irk":        MatchAuthTag(irk[:15], id, tag),
		"not base64":       MatchAuthTag(irk[:], id, "!!!!!!!!"),
		"long tag":         MatchAuthTag(irk[:], id, base64.StdEncoding.EncodeToString(make([]byte, 9))),
		"empty tag":        MatchAuthTag(irk[:], id, ""),
	} {
		if ok {
			t.Errorf("%s matched", name)
		}
	}
}
