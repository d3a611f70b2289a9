package quictunnel

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// MaxSPKILen bounds a SubjectPublicKeyInfo taken from a peer (an RSA-4096 SPKI is ~550 bytes).
const MaxSPKILen = 4096

// NewClientKey makes the fresh RSA-2048 (e = 65537) key of one QUIC tunnel (tunnel.md §4).
func NewClientKey() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, ClientKeyBits)
}

// SPKI is the DER SubjectPublicKeyInfo of pub: what createListener's `key` (base64) carries
// for QUIC and what its reply's `devicePublicKey` holds.
func SPKI(pub crypto.PublicKey) ([]byte, error) {
	return x509.MarshalPKIXPublicKey(pub)
}

// ParseSPKI parses a DER SubjectPublicKeyInfo from a peer, bounded in size.
func ParseSPKI(der []byte) (crypto.PublicKey, error) {
	if len(der) == 0 || len(der) > MaxSPKILen {
		return nil, fmt.Errorf("quictunnel: public key of %d bytes", len(der))
	}
	return x509.ParsePKIXPublicKey(der)
}

// selfSigned makes a self-signed certificate for key as pymobiledevice3 and go-ios do
// (tunnel.md §4): serial 1, empty subject, valid from a minute ago for 10 years.
func selfSigned(key crypto.Signer) (tls.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quictunnel: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// ErrWrongClientKey is the server's refusal of a client certificate whose key is not the one
// createListener named.
var ErrWrongClientKey = errors.New("quictunnel: client certificate key is not the createListener key")

// leafSPKI parses the first certificate of a chain and returns its key's SPKI.
func leafSPKI(raw [][]byte) ([]byte, error) {
	if len(raw) == 0 {
		return nil, errors.New("quictunnel: no certificate")
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return nil, fmt.Errorf("quictunnel: certificate: %w", err)
	}
	return cert.RawSubjectPublicKeyInfo, nil
}

// requireKey returns a VerifyPeerCertificate that accepts only a leaf whose key is spki (TLS 1.3
// CertificateVerify then proves the peer holds its private key).
func requireKey(spki []byte) func([][]byte, [][]*x509.Certificate) error {
	want := bytes.Clone(spki)
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		got, err := leafSPKI(raw)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return ErrWrongClientKey
		}
		return nil
	}
}
