package tlspsk

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
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
	mac    hash.Hash // CBC suites
	block  cipher.Block
	gcm    cipher.AEAD
	salt   []byte
	seq    uint64
	nonce  [12]byte
	ad     [13]byte
	iv     []byte
}

// additional fills p.ad with seq || type || version || length.
func (p *protection) additional(seq uint64, typ byte, n int) []byte {
	binary.BigEndian.PutUint64(p.ad[:], seq)
	p.ad[8] = typ
	binary.BigEndian.PutUint16(p.ad[9:], versionTLS12)
	binary.BigEndian.PutUint16(p.ad[11:], uint16(n))
	return p.ad[:]
}

// seal appends the protected fragment of pt to dst.
func (p *protection) seal(dst []byte, typ byte, pt []byte) ([]byte, error) {
	seq := p.seq
	p.seq++
	if p.gcm != nil {
		copy(p.nonce[:], p.salt)
		binary.BigEndian.PutUint64(p.nonce[4:], seq)
		dst = append(dst, p.nonce[4:]...)
		return p.gcm.Seal(dst, p.nonce[:], pt, p.additional(seq, typ, len(pt))), nil
	}
	bs := p.block.BlockSize()
	p.mac.Reset()
	p.mac.Write(p.additional(seq, typ, len(pt)))
	p.mac.Write(pt)
	off := len(dst)
	dst = append(dst, make([]byte, bs)...) // explicit IV
	if _, err := io.ReadFull(rand.Reader, dst[off:]); err != nil {
		return nil, err
	}
	dst = append(dst, pt...)
	dst = p.mac.Sum(dst)
	padLen := bs - (len(dst)-off-bs+1)%bs
	if padLen == bs {
		padLen = 0
	}
	for i := 0; i <= padLen; i++ {
		dst = append(dst, byte(padLen))
	}
	body := dst[off+bs:]
	cipher.NewCBCEncrypter(p.block, dst[off:off+bs]).CryptBlocks(body, body)
	return dst, nil
}

// open authenticates and decrypts one record fragment in place.
func (p *protection) open(typ byte, frag []byte) ([]byte, error) {
	seq := p.seq
	p.seq++
	if p.gcm != nil {
		if len(frag) < 8+p.gcm.Overhead() {
			return nil, errBadRecordMAC
		}
		copy(p.nonce[:], p.salt)
		copy(p.nonce[4:], frag[:8])
		ct := frag[8:]
		pt, err := p.gcm.Open(ct[:0], p.nonce[:], ct, p.additional(seq, typ, len(ct)-p.gcm.Overhead()))
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
	body := frag[bs:]
	cipher.NewCBCDecrypter(p.block, frag[:bs]).CryptBlocks(body, body)
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
	p.mac.Reset()
	p.mac.Write(p.additional(seq, typ, n))
	p.mac.Write(body[:n])
	var sum [64]byte
	ok := subtle.ConstantTimeCompare(p.mac.Sum(sum[:0]), body[n:n+ml])
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
