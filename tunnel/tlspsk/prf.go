package tlspsk

import (
	"crypto/hmac"
	"encoding/binary"
	"hash"
)

// prf is the TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label || seed) truncated to n bytes.
func prf(h func() hash.Hash, secret []byte, label string, seed []byte, n int) []byte {
	ls := append([]byte(label), seed...)
	out := make([]byte, 0, n+64)
	mac := hmac.New(h, secret)
	mac.Write(ls)
	a := mac.Sum(nil) // A(1)
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		mac.Write(ls)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:n]
}

// pskPremaster is RFC 4279 §2: uint16(N) || N zero bytes || uint16(N) || psk.
func pskPremaster(psk []byte) []byte {
	n := len(psk)
	b := make([]byte, 0, 4+2*n)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, make([]byte, n)...)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	return append(b, psk...)
}
