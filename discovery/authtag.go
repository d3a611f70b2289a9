package discovery

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"math/bits"
)

// AuthTagLen is the length of a decoded _remotepairing._tcp auth tag.
const AuthTagLen = 6

// AuthTag is the TXT authTag a device with the 16-byte altIRK irk advertises with identifier:
// base64 of the first six bytes of SipHash-2-4(irk, identifier) in little-endian order,
// reversed (spec discovery.md §4).
func AuthTag(irk []byte, identifier string) string {
	var k [16]byte
	copy(k[:], irk)
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], SipHash24(k, []byte(identifier)))
	var tag [AuthTagLen]byte
	for i := range tag {
		tag[i] = le[AuthTagLen-1-i]
	}
	return base64.StdEncoding.EncodeToString(tag[:])
}

// MatchAuthTag reports whether tag is identifier's auth tag under irk (a 16-byte altIRK),
// comparing in constant time.
func MatchAuthTag(irk []byte, identifier, tag string) bool {
	if len(irk) != 16 || len(tag) > 16 {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(tag)
	if err != nil || len(got) != AuthTagLen {
		return false
	}
	want, _ := base64.StdEncoding.DecodeString(AuthTag(irk, identifier))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// SipHash24 is SipHash-2-4 of msg under the 128-bit key k (Aumasson and Bernstein).
func SipHash24(k [16]byte, msg []byte) uint64 {
	k0 := binary.LittleEndian.Uint64(k[:8])
	k1 := binary.LittleEndian.Uint64(k[8:])
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(msg)
	for len(msg) >= 8 {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		round()
		round()
		v0 ^= m
		msg = msg[8:]
	}
	var last [8]byte
	copy(last[:], msg)
	last[7] = byte(n)
	m := binary.LittleEndian.Uint64(last[:])
	v3 ^= m
	round()
	round()
	v0 ^= m
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}
