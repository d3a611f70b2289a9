package pairrecord

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// KeyBits is the RSA size of generated root and host keys (pair-records.md §2.2: RSA-2048).
const KeyBits = 2048

// Validity is how long generated certificates are valid (libimobiledevice: 10 years).
const Validity = 10 * 365 * 24 * time.Hour

// Options tune New.
type Options struct {
	HostID         string // "" gives a random upper-case UUID (libimobiledevice style)
	SystemBUID     string // the host's usbmuxd BUID; "" gives a random one
	UDID           string // stored in the record if set
	WiFiMACAddress string // the device's WiFiAddress, stored if set
	// Now is the certificates' start time; zero means time.Now. NotBefore is set an hour
	// earlier to tolerate a device clock slightly behind the host's.
	Now time.Time
}

// New generates a fresh pair record for a device whose lockdown DevicePublicKey is
// devicePublicKey (PEM "RSA PUBLIC KEY" as devices send it, or "PUBLIC KEY"):
// a self-signed root CA (CA:TRUE, critical), a host certificate and a device certificate
// embedding the device's key, both signed by the root (CA:FALSE, digitalSignature +
// keyEncipherment), fresh RSA-2048 root and host keys in PKCS#8 PEM (pair-records.md §2.2).
// Certificates have an empty subject, as libimobiledevice's, and SHA-256 signatures.
func New(devicePublicKey []byte, o Options) (*Record, error) {
	devKey, err := ParsePublicKey(devicePublicKey)
	if err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	notBefore := now.Add(-time.Hour)
	notAfter := now.Add(Validity)

	rootKey, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: root key: %w", err)
	}
	hostKey, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: host key: %w", err)
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: root certificate: %w", err)
	}
	leaf := func(pub crypto.PublicKey) ([]byte, error) {
		t := &x509.Certificate{
			SerialNumber:          randomSerial(),
			NotBefore:             notBefore,
			NotAfter:              notAfter,
			BasicConstraintsValid: true,
			IsCA:                  false,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			SignatureAlgorithm:    x509.SHA256WithRSA,
		}
		return x509.CreateCertificate(rand.Reader, t, root, pub, rootKey)
	}
	hostDER, err := leaf(&hostKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: host certificate: %w", err)
	}
	devDER, err := leaf(devKey)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: device certificate: %w", err)
	}
	rootPK, err := x509.MarshalPKCS8PrivateKey(rootKey)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: root key: %w", err)
	}
	hostPK, err := x509.MarshalPKCS8PrivateKey(hostKey)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: host key: %w", err)
	}
	r := &Record{
		HostID:            o.HostID,
		SystemBUID:        o.SystemBUID,
		UDID:              o.UDID,
		WiFiMACAddress:    o.WiFiMACAddress,
		RootCertificate:   pemEncode("CERTIFICATE", rootDER),
		RootPrivateKey:    pemEncode("PRIVATE KEY", rootPK),
		HostCertificate:   pemEncode("CERTIFICATE", hostDER),
		HostPrivateKey:    pemEncode("PRIVATE KEY", hostPK),
		DeviceCertificate: pemEncode("CERTIFICATE", devDER),
	}
	if r.HostID == "" {
		r.HostID = NewUUID()
	}
	if r.SystemBUID == "" {
		r.SystemBUID = NewUUID()
	}
	return r, nil
}

// ParsePublicKey parses a device public key: PEM "RSA PUBLIC KEY" (PKCS#1, what lockdown
// DevicePublicKey carries) or "PUBLIC KEY" (PKIX).
func ParsePublicKey(b []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: DevicePublicKey is not PEM", ErrInvalid)
	}
	switch blk.Type {
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: DevicePublicKey: %v", ErrInvalid, err)
		}
		return k, nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: DevicePublicKey: %v", ErrInvalid, err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: DevicePublicKey is %T, want RSA", ErrInvalid, k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("%w: DevicePublicKey PEM type %q", ErrInvalid, blk.Type)
}

// ParseCertificate parses the first PEM certificate in b (DeviceCertificate, HostCertificate, ...).
func ParseCertificate(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%w: no PEM certificate", ErrInvalid)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: certificate: %v", ErrInvalid, err)
			}
			return c, nil
		}
	}
}

// NewUUID returns a random version-4 UUID in upper case (HostID, SystemBUID style).
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

func randomSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[0] &= 0x7F // positive
	b[0] |= 0x01 // never zero
	return new(big.Int).SetBytes(b[:])
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
