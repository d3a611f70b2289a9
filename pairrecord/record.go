// Package pairrecord is the classic lockdown pair record (pair-records.md §2): its plist form,
// generation of a fresh record for lockdown Pair, importers for the records a Linux host may
// already have (usbmuxd, libimobiledevice, pymobiledevice3) and iosmux's own store.
//
// A Record holds private keys. Its String, GoString and LogValue redact them, so printing or
// logging a record never leaks a secret; use Marshal to get the full plist.
package pairrecord

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/iosmux/iosmux/internal/plistlimit"
	"log/slog"
	"sort"
	"strings"

	"howett.net/plist"
)

// Plist keys of a classic pair record (pair-records.md §2.2).
const (
	KeyDeviceCertificate = "DeviceCertificate"
	KeyEscrowBag         = "EscrowBag"
	KeyHostCertificate   = "HostCertificate"
	KeyHostID            = "HostID"
	KeyHostPrivateKey    = "HostPrivateKey"
	KeyRootCertificate   = "RootCertificate"
	KeyRootPrivateKey    = "RootPrivateKey"
	KeySystemBUID        = "SystemBUID"
	KeyWiFiMACAddress    = "WiFiMACAddress"
	KeyUDID              = "UDID"
)

// ErrNotFound reports that a source has no pair record for the device.
var ErrNotFound = errors.New("pairrecord: no pair record for this device")

// ErrInvalid reports a pair record that cannot be used (bad plist, missing or malformed keys).
var ErrInvalid = errors.New("pairrecord: invalid pair record")

// Record is a classic lockdown pair record. Certificates and keys are PEM text, as usbmuxd,
// libimobiledevice and pymobiledevice3 store them (plist data holding PEM, not DER).
type Record struct {
	HostID            string
	SystemBUID        string
	HostCertificate   []byte // PEM certificate, the TLS client certificate
	HostPrivateKey    []byte // PEM RSA key, PKCS#1 or PKCS#8 (secret)
	RootCertificate   []byte // PEM self-signed CA that signed Host- and DeviceCertificate
	RootPrivateKey    []byte // PEM (secret)
	DeviceCertificate []byte // PEM, the device's DevicePublicKey signed by the root
	EscrowBag         []byte // keybag from the device's Pair reply (secret)
	WiFiMACAddress    string // the device's Wi-Fi MAC
	UDID              string // optional; some tools write it (pair-records.md §2.2)

	// Extra holds every key this type does not know, so a parsed record written back with
	// Marshal loses nothing. Values are as the plist decoder gives them.
	Extra map[string]any
}

// MaxRecordValues bounds what a pair record's plist may expand to (plistlimit.Check's units:
// about 1 MiB of strings and data); a real record has a dozen values.
const MaxRecordValues = 1 << 14

// Parse decodes an XML or binary plist pair record (the OpenStep text forms are refused). Data-typed keys given as strings (as in
// JSON-derived records) are accepted. Input
// over 1 MiB or expanding past MaxRecordValues is refused before the plist library sees it.
func Parse(data []byte) (rec *Record, err error) {
	defer func() {
		// The plist library may panic on hostile input; never let it crash the caller.
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("%w: plist decode: %v", ErrInvalid, p)
		}
	}()
	var m map[string]any
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrInvalid, len(data), maxFileSize)
	}
	if err := plistlimit.Check(data, MaxRecordValues); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	format, err := plist.Unmarshal(data, &m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if format != plist.XMLFormat && format != plist.BinaryFormat {
		return nil, fmt.Errorf("%w: not an XML or binary plist", ErrInvalid)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: not a dictionary", ErrInvalid)
	}
	r := &Record{}
	for k, v := range m {
		if err := r.set(k, v); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// set stores one plist key, moving unknown keys to Extra.
func (r *Record) set(k string, v any) error {
	str := func(dst *string) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: %s is %T, want string", ErrInvalid, k, v)
		}
		*dst = s
		return nil
	}
	data := func(dst *[]byte) error {
		switch t := v.(type) {
		case []byte:
			*dst = t
		case string:
			*dst = []byte(t)
		default:
			return fmt.Errorf("%w: %s is %T, want data", ErrInvalid, k, v)
		}
		return nil
	}
	switch k {
	case KeyHostID:
		return str(&r.HostID)
	case KeySystemBUID:
		return str(&r.SystemBUID)
	case KeyWiFiMACAddress:
		return str(&r.WiFiMACAddress)
	case KeyUDID:
		return str(&r.UDID)
	case KeyHostCertificate:
		return data(&r.HostCertificate)
	case KeyHostPrivateKey:
		return data(&r.HostPrivateKey)
	case KeyRootCertificate:
		return data(&r.RootCertificate)
	case KeyRootPrivateKey:
		return data(&r.RootPrivateKey)
	case KeyDeviceCertificate:
		return data(&r.DeviceCertificate)
	case KeyEscrowBag:
		return data(&r.EscrowBag)
	}
	if r.Extra == nil {
		r.Extra = map[string]any{}
	}
	r.Extra[k] = v
	return nil
}

// Map returns the record as the plist dictionary it is stored as: every non-empty known key
// plus Extra.
func (r *Record) Map() map[string]any {
	m := make(map[string]any, 10+len(r.Extra))
	for k, v := range r.Extra {
		m[k] = v
	}
	putS := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	putB := func(k string, v []byte) {
		if v != nil {
			m[k] = v
		}
	}
	putS(KeyHostID, r.HostID)
	putS(KeySystemBUID, r.SystemBUID)
	putS(KeyWiFiMACAddress, r.WiFiMACAddress)
	putS(KeyUDID, r.UDID)
	putB(KeyHostCertificate, r.HostCertificate)
	putB(KeyHostPrivateKey, r.HostPrivateKey)
	putB(KeyRootCertificate, r.RootCertificate)
	putB(KeyRootPrivateKey, r.RootPrivateKey)
	putB(KeyDeviceCertificate, r.DeviceCertificate)
	putB(KeyEscrowBag, r.EscrowBag)
	return m
}

// Marshal encodes the record as an XML plist (the format usbmuxd and pymobiledevice3 write).
func (r *Record) Marshal() ([]byte, error) {
	b, err := plist.MarshalIndent(r.Map(), plist.XMLFormat, "\t")
	if err != nil {
		return nil, fmt.Errorf("pairrecord: marshal: %w", err)
	}
	return b, nil
}

// PairRequest returns the PairRecord dictionary of a lockdown Pair request: the host's
// identity and the three certificates, never a private key. libimobiledevice removes the
// private keys before sending; what the device needs is the root that signed the host
// certificate and the DeviceCertificate it will keep (pair-records.md §2.2).
func (r *Record) PairRequest() map[string]any {
	return map[string]any{
		KeyDeviceCertificate: r.DeviceCertificate,
		KeyHostCertificate:   r.HostCertificate,
		KeyHostID:            r.HostID,
		KeyRootCertificate:   r.RootCertificate,
		KeySystemBUID:        r.SystemBUID,
	}
}

// Validate checks what a lockdown session needs: HostID and a loadable host certificate/key.
func (r *Record) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil record", ErrInvalid)
	}
	if r.HostID == "" {
		return fmt.Errorf("%w: no HostID", ErrInvalid)
	}
	_, err := r.TLSCertificate()
	return err
}

// TLSCertificate returns the host certificate and key for lockdown TLS (session and services).
func (r *Record) TLSCertificate() (tls.Certificate, error) {
	if len(r.HostCertificate) == 0 || len(r.HostPrivateKey) == 0 {
		return tls.Certificate{}, fmt.Errorf("%w: no HostCertificate/HostPrivateKey", ErrInvalid)
	}
	c, err := tls.X509KeyPair(r.HostCertificate, r.HostPrivateKey)
	if err != nil {
		// The error text of X509KeyPair never contains key material.
		return tls.Certificate{}, fmt.Errorf("%w: HostCertificate/HostPrivateKey: %v", ErrInvalid, err)
	}
	return c, nil
}

// Clone returns a deep copy of r (Extra values are copied one level deep).
func (r *Record) Clone() *Record {
	c := *r
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return append([]byte(nil), b...)
	}
	c.HostCertificate = cp(r.HostCertificate)
	c.HostPrivateKey = cp(r.HostPrivateKey)
	c.RootCertificate = cp(r.RootCertificate)
	c.RootPrivateKey = cp(r.RootPrivateKey)
	c.DeviceCertificate = cp(r.DeviceCertificate)
	c.EscrowBag = cp(r.EscrowBag)
	if r.Extra != nil {
		c.Extra = make(map[string]any, len(r.Extra))
		for k, v := range r.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}

// String describes the record without any secret: identifiers and which keys are present.
func (r *Record) String() string {
	if r == nil {
		return "pairrecord(nil)"
	}
	return fmt.Sprintf("pairrecord(HostID=%s SystemBUID=%s UDID=%s WiFiMACAddress=%s keys=[%s])",
		r.HostID, r.SystemBUID, r.UDID, r.WiFiMACAddress, strings.Join(r.present(), " "))
}

// GoString keeps %#v from printing private keys.
func (r *Record) GoString() string { return r.String() }

// LogValue keeps slog from printing private keys.
func (r *Record) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("nil")
	}
	return slog.GroupValue(
		slog.String("HostID", r.HostID),
		slog.String("SystemBUID", r.SystemBUID),
		slog.String("UDID", r.UDID),
		slog.String("keys", strings.Join(r.present(), ",")),
	)
}

// present lists the keys that have a value; secret ones are marked redacted.
func (r *Record) present() []string {
	var out []string
	for k, v := range r.Map() {
		switch k {
		case KeyHostPrivateKey, KeyRootPrivateKey, KeyEscrowBag:
			out = append(out, k+"=<redacted>")
		default:
			_ = v
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
