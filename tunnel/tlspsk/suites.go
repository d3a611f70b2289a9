package tlspsk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
)

// Cipher suite IDs (RFC 4279, RFC 5487).
const (
	PSKWithAES128CBCSHA    uint16 = 0x008C // PSK-AES128-CBC-SHA
	PSKWithAES256CBCSHA    uint16 = 0x008D // PSK-AES256-CBC-SHA
	PSKWithAES128GCMSHA256 uint16 = 0x00A8 // PSK-AES128-GCM-SHA256
	PSKWithAES256GCMSHA384 uint16 = 0x00A9 // PSK-AES256-GCM-SHA384
	PSKWithAES256CBCSHA384 uint16 = 0x00AF // PSK-AES256-CBC-SHA384
	scsvRenegotiation      uint16 = 0x00FF // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
)

// suite describes one cipher suite.
type suite struct {
	id     uint16
	name   string // OpenSSL name
	prf    func() hash.Hash
	mac    func() hash.Hash // CBC suites; nil for AEAD
	macLen int
	keyLen int
	ivLen  int // fixed IV bytes from the key block (GCM salt); 0 for CBC (explicit IV)
	aead   bool
}

// DefaultSuites is the server's order of preference and the client's offer.
var DefaultSuites = []uint16{PSKWithAES256GCMSHA384, PSKWithAES128GCMSHA256, PSKWithAES256CBCSHA, PSKWithAES128CBCSHA, PSKWithAES256CBCSHA384}

var suites = map[uint16]*suite{
	PSKWithAES128CBCSHA:    {id: PSKWithAES128CBCSHA, name: "PSK-AES128-CBC-SHA", prf: sha256.New, mac: sha1.New, macLen: 20, keyLen: 16},
	PSKWithAES256CBCSHA:    {id: PSKWithAES256CBCSHA, name: "PSK-AES256-CBC-SHA", prf: sha256.New, mac: sha1.New, macLen: 20, keyLen: 32},
	PSKWithAES128GCMSHA256: {id: PSKWithAES128GCMSHA256, name: "PSK-AES128-GCM-SHA256", prf: sha256.New, keyLen: 16, ivLen: 4, aead: true},
	PSKWithAES256GCMSHA384: {id: PSKWithAES256GCMSHA384, name: "PSK-AES256-GCM-SHA384", prf: sha512.New384, keyLen: 32, ivLen: 4, aead: true},
	PSKWithAES256CBCSHA384: {id: PSKWithAES256CBCSHA384, name: "PSK-AES256-CBC-SHA384", prf: sha512.New384, mac: sha512.New384, macLen: 48, keyLen: 32},
}

// SuiteName returns the OpenSSL name of a suite ID ("" if unknown).
func SuiteName(id uint16) string {
	if s := suites[id]; s != nil {
		return s.name
	}
	return ""
}

// keys derives one direction's record protection from the key block.
type keys struct {
	mac, key, iv []byte
}

// keyBlock splits PRF(master, "key expansion", server_random || client_random).
func (s *suite) keyBlock(master, clientRandom, serverRandom []byte) (client, server keys) {
	n := 2 * (s.macLen + s.keyLen + s.ivLen)
	kb := prf(s.prf, master, "key expansion", append(append([]byte{}, serverRandom...), clientRandom...), n)
	take := func(k int) []byte { v := kb[:k:k]; kb = kb[k:]; return v }
	client.mac, server.mac = take(s.macLen), take(s.macLen)
	client.key, server.key = take(s.keyLen), take(s.keyLen)
	client.iv, server.iv = take(s.ivLen), take(s.ivLen)
	return client, server
}

// newProtection builds the record protection for one direction.
func (s *suite) newProtection(k keys) (*protection, error) {
	block, err := aes.NewCipher(k.key)
	if err != nil {
		return nil, err
	}
	p := &protection{suite: s, macKey: k.mac, block: block}
	if s.mac != nil {
		p.mac = hmac.New(s.mac, k.mac)
	}
	if s.aead {
		if p.gcm, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
		p.salt = k.iv
	}
	return p, nil
}
