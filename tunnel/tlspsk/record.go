package tlspsk

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Record types and limits (RFC 5246 §6.2).
const (
	recordChangeCipherSpec byte = 20
	recordAlert            byte = 21
	recordHandshake        byte = 22
	recordApplicationData  byte = 23

	recordHeaderLen = 5
	// MaxPlaintext is the largest record payload (2^14).
	MaxPlaintext = 1 << 14
	// maxCiphertext bounds an incoming record (2^14 + 2048, RFC 5246 §6.2.3).
	maxCiphertext = MaxPlaintext + 2048
	versionTLS12  = 0x0303
)

// errBadRecordMAC is any record authentication failure (padding, MAC or AEAD tag).
var errBadRecordMAC = errors.New("bad record MAC")

// protection is one direction's record encryption, with its sequence number.
type protection struct {
	suite  *suite
	macKey []byte
	block  cipher.Block
	gcm    cipher.AEAD
	salt   []byte
	seq    uint64
}

// additional is seq || type || version || length.
func additional(seq uint64, typ byte, n int) []byte {
	b := make([]byte, 13)
	binary.BigEndian.PutUint64(b, seq)
	b[8] = typ
	binary.BigEndian.PutUint16(b[9:], versionTLS12)
	binary.BigEndian.PutUint16(b[11:], uint16(n))
	return b
}

// seal protects one record payload and returns the fragment to send.
func (p *protection) seal(typ byte, pt []byte) ([]byte, error) {
	seq := p.seq
	p.seq++
	if p.gcm != nil {
		nonce := make([]byte, 12)
		copy(nonce, p.salt)
		binary.BigEndian.PutUint64(nonce[4:], seq)
		out := append([]byte{}, nonce[4:]...)
		return p.gcm.Seal(out, nonce, pt, additional(seq, typ, len(pt))), nil
	}
	mac := hmac.New(p.suite.mac, p.macKey)
	mac.Write(additional(seq, typ, len(pt)))
	mac.Write(pt)
	bs := p.block.BlockSize()
	body := append(append([]byte{}, pt...), mac.Sum(nil)...)
	padLen := bs - (len(body)+1)%bs
	if padLen == bs {
		padLen = 0
	}
	for i := 0; i <= padLen; i++ {
		body = append(body, byte(padLen))
	}
	out := make([]byte, bs+len(body))
	if _, err := io.ReadFull(rand.Reader, out[:bs]); err != nil {
		return nil, err
	}
	cipher.NewCBCEncrypter(p.block, out[:bs]).CryptBlocks(out[bs:], body)
	return out, nil
}

// open authenticates and decrypts one record fragment.
func (p *protection) open(typ byte, frag []byte) ([]byte, error) {
	seq := p.seq
	p.seq++
	if p.gcm != nil {
		if len(frag) < 8+p.gcm.Overhead() {
			return nil, errBadRecordMAC
		}
		nonce := make([]byte, 12)
		copy(nonce, p.salt)
		copy(nonce[4:], frag[:8])
		ct := frag[8:]
		pt, err := p.gcm.Open(nil, nonce, ct, additional(seq, typ, len(ct)-p.gcm.Overhead()))
		if err != nil {
			return nil, errBadRecordMAC
		}
		return pt, nil
	}
	bs := p.block.BlockSize()
	ml := p.suite.macLen
	if len(frag)%bs != 0 || len(frag) < bs+((ml+1+bs-1)/bs)*bs {
		return nil, errBadRecordMAC
	}
	body := make([]byte, len(frag)-bs)
	cipher.NewCBCDecrypter(p.block, frag[:bs]).CryptBlocks(body, frag[bs:])
	// Padding checked without branching on its bytes (as crypto/tls's extractPadding).
	padLen := int(body[len(body)-1])
	good := subtle.ConstantTimeLessOrEq(padLen+1+ml, len(body))
	toCheck := min(256, len(body))
	for i := 0; i < toCheck; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, padLen)
		b := body[len(body)-1-i]
		good &= subtle.ConstantTimeSelect(inPad, subtle.ConstantTimeByteEq(b, byte(padLen)), 1)
	}
	n := len(body) - 1 - padLen - ml
	if good != 1 {
		n = len(body) - 1 - ml // keep the MAC work the same shape; result is rejected below
	}
	if n < 0 {
		return nil, errBadRecordMAC
	}
	mac := hmac.New(p.suite.mac, p.macKey)
	mac.Write(additional(seq, typ, n))
	mac.Write(body[:n])
	ok := subtle.ConstantTimeCompare(mac.Sum(nil), body[n:n+ml])
	if ok&good != 1 {
		return nil, errBadRecordMAC
	}
	return body[:n], nil
}

// recordHeader parses and bounds a record header.
func recordHeader(h []byte) (typ byte, n int, err error) {
	typ, n = h[0], int(binary.BigEndian.Uint16(h[3:]))
	if h[1] != 3 {
		return 0, 0, fmt.Errorf("record version %d.%d is not TLS", h[1], h[2])
	}
	if typ < recordChangeCipherSpec || typ > recordApplicationData {
		return 0, 0, fmt.Errorf("record type %d", typ)
	}
	if n > maxCiphertext {
		return 0, 0, fmt.Errorf("record of %d bytes exceeds %d", n, maxCiphertext)
	}
	return typ, n, nil
}
