package pairing

import (
	"crypto/hkdf"
	"crypto/sha512"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// HKDF (salt, info) labels (pairing.md §6–§8, §11).
const (
	hkdfSetupEncryptSalt   = "Pair-Setup-Encrypt-Salt"
	hkdfSetupEncryptInfo   = "Pair-Setup-Encrypt-Info"
	hkdfControllerSignSalt = "Pair-Setup-Controller-Sign-Salt"
	hkdfControllerSignInfo = "Pair-Setup-Controller-Sign-Info"
	hkdfAccessorySignSalt  = "Pair-Setup-Accessory-Sign-Salt"
	hkdfAccessorySignInfo  = "Pair-Setup-Accessory-Sign-Info"
	hkdfVerifyEncryptSalt  = "Pair-Verify-Encrypt-Salt"
	hkdfVerifyEncryptInfo  = "Pair-Verify-Encrypt-Info"
	hkdfClientEncryptInfo  = "ClientEncrypt-main"
	hkdfServerEncryptInfo  = "ServerEncrypt-main"
	nonceSetupM5           = "PS-Msg05"
	nonceSetupM6           = "PS-Msg06"
	nonceVerifyM2          = "PV-Msg02"
	nonceVerifyM3          = "PV-Msg03"
	keyLen                 = 32
)

// ErrDecrypt reports an AEAD authentication failure (tampered or wrongly keyed message).
var ErrDecrypt = errors.New("pairing: decryption failed")

// deriveKey is HKDF-SHA512(ikm, salt, info) with a 32-byte output; an empty salt is RFC 5869's default.
func deriveKey(ikm []byte, salt, info string) []byte {
	k, err := hkdf.Key(sha512.New, ikm, []byte(salt), info, keyLen)
	if err != nil { // only for absurd lengths; keyLen is fixed
		panic("pairing: hkdf: " + err.Error())
	}
	return k
}

// labelNonce is 00000000 || label (8 ASCII bytes).
func labelNonce(label string) []byte {
	n := make([]byte, chacha20poly1305.NonceSize)
	copy(n[4:], label)
	return n
}

// sealLabel encrypts pt with ChaCha20-Poly1305 under key and the labelled nonce, empty AAD.
func sealLabel(key []byte, label string, pt []byte) []byte {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		panic("pairing: chacha20poly1305: " + err.Error())
	}
	return a.Seal(nil, labelNonce(label), pt, nil)
}

// openLabel decrypts ct sealed by sealLabel.
func openLabel(key []byte, label string, ct []byte) ([]byte, error) {
	a, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	pt, err := a.Open(nil, labelNonce(label), ct, nil)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrDecrypt, label)
	}
	return pt, nil
}
