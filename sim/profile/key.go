package profile

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"sync"
)

// The device key pair (DevicePublicKey, device-profile.md §1.2 e and §6: "fresh RSA-2048,
// PKCS#1 PEM, stable per device"). crypto/rsa.GenerateKey cannot be seeded, so the primes are
// drawn here from a SHA-256 counter-mode stream keyed by profile name and UDID: every
// simulated device gets its own key, and the same device gets the same key on every run
// (a stored pair record keeps matching). These are simulator keys with no secrecy value.

const deviceKeyBits = 2048

type keyHolder struct {
	material string
	once     sync.Once
	priv     *rsa.PrivateKey
	pub      []byte
}

var (
	keysMu sync.Mutex
	keys   = map[string]*keyHolder{}
)

// sharedKey returns the holder for material, shared by all Devices with the same identity.
func sharedKey(material string) *keyHolder {
	keysMu.Lock()
	defer keysMu.Unlock()
	h := keys[material]
	if h == nil {
		h = &keyHolder{material: material}
		keys[material] = h
	}
	return h
}

func (h *keyHolder) load() {
	h.once.Do(func() {
		h.priv = deterministicRSAKey("iosmux/sim/profile/devicekey\x00"+h.material, deviceKeyBits)
		h.pub = pem.EncodeToMemory(&pem.Block{
			Type:  "RSA PUBLIC KEY",
			Bytes: x509.MarshalPKCS1PublicKey(&h.priv.PublicKey),
		})
	})
}

func (h *keyHolder) get() *rsa.PrivateKey {
	h.load()
	return h.priv
}

func (h *keyHolder) publicPEM() []byte {
	h.load()
	return append([]byte(nil), h.pub...)
}

// stream is a SHA-256 counter-mode byte stream.
type stream struct {
	seed    []byte
	counter uint64
	buf     []byte
}

func (s *stream) fill(b []byte) {
	for i := range b {
		if len(s.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], s.counter)
			s.counter++
			sum := sha256.Sum256(append(append([]byte(nil), s.seed...), c[:]...))
			s.buf = sum[:]
		}
		b[i] = s.buf[0]
		s.buf = s.buf[1:]
	}
}

// deterministicRSAKey builds a two-prime RSA key with e = 65537 whose primes come from
// the stream seeded with seed.
func deterministicRSAKey(seed string, bits int) *rsa.PrivateKey {
	s := &stream{seed: []byte(seed)}
	e := big.NewInt(65537)
	one := big.NewInt(1)
	for {
		p := randomPrime(s, bits/2, e)
		q := randomPrime(s, bits/2, e)
		if p.Cmp(q) == 0 {
			continue
		}
		n := new(big.Int).Mul(p, q)
		if n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(e, phi)
		if d == nil {
			continue
		}
		if p.Cmp(q) < 0 {
			p, q = q, p
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())},
			D:         d,
			Primes:    []*big.Int{p, q},
		}
		k.Precompute()
		if k.Validate() != nil {
			continue
		}
		return k
	}
}

// randomPrime draws candidates of exactly bits bits (top two bits set, so the product of two
// has 2·bits bits) until one is prime with p mod e != 1 (so e is invertible mod p-1).
func randomPrime(s *stream, bits int, e *big.Int) *big.Int {
	b := make([]byte, (bits+7)/8)
	r := new(big.Int)
	for {
		s.fill(b)
		b[0] |= 0xC0
		b[len(b)-1] |= 1
		p := new(big.Int).SetBytes(b)
		if r.Mod(p, e).IsInt64() && r.Int64() == 1 {
			continue
		}
		if p.ProbablyPrime(20) {
			return p
		}
	}
}
