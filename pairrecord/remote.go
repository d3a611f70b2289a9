package pairrecord

import (
	"bytes"
	"crypto/ed25519"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"howett.net/plist"
)

// ErrNoRemoteRecord reports that no RemotePairing record exists for a device. A lockdown pair
// record is a different kind and never stands in for one.
var ErrNoRemoteRecord = errors.New("pairrecord: no RemotePairing record")

// Remote is a RemotePairing record (pair-records.md §8.3): the host identity iosmux used to
// pair with one device over RemotePairing, and what it learnt about the device.
type Remote struct {
	Identifier          string    `plist:"identifier"`      // host identifier, exactly as signed
	HostIdentifier      string    `plist:"host_identifier"` // = Identifier, for pymobiledevice3
	PrivateKey          []byte    `plist:"private_key"`     // Ed25519 seed (32)
	PublicKey           []byte    `plist:"public_key"`      // Ed25519 public (32)
	DeviceUDID          string    `plist:"device_udid,omitempty"`
	DeviceIdentifier    string    `plist:"device_identifier,omitempty"` // M6 IDENTIFIER
	DeviceLTPK          []byte    `plist:"device_ltpk,omitempty"`
	DeviceAltIRK        []byte    `plist:"device_alt_irk,omitempty"`
	RemoteUnlockHostKey string    `plist:"remote_unlock_host_key"`
	Created             time.Time `plist:"created,omitempty"`
}

// Key returns the host's Ed25519 private key.
func (r *Remote) Key() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(r.PrivateKey) }

// Check verifies the record is usable: an identifier and a key pair that belong together.
func (r *Remote) Check() error {
	if r.Identifier == "" {
		return errors.New("pairrecord: RemotePairing record has no host identifier")
	}
	if len(r.PrivateKey) != ed25519.SeedSize {
		return fmt.Errorf("pairrecord: RemotePairing record: private_key is %d bytes, want %d", len(r.PrivateKey), ed25519.SeedSize)
	}
	if pub := r.Key().Public().(ed25519.PublicKey); len(r.PublicKey) != 0 && !pub.Equal(ed25519.PublicKey(r.PublicKey)) {
		return errors.New("pairrecord: RemotePairing record: public_key does not match private_key")
	}
	return nil
}

// NewRemote makes a fresh host identity for pairing with udid: a new Ed25519 key and identifier.
func NewRemote(identifier, udid string) (*Remote, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: RemotePairing key: %w", err)
	}
	return &Remote{Identifier: identifier, HostIdentifier: identifier, PrivateKey: priv.Seed(),
		PublicKey: pub, DeviceUDID: udid, Created: time.Now().UTC().Truncate(time.Second)}, nil
}

// HostIdentifier is pymobiledevice3's and appium's host identifier for hostname:
// UPPER(UUIDv3(namespace DNS, hostname)) (pair-records.md §3, test-vectors.md §11).
func HostIdentifier(hostname string) string {
	ns := []byte{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := md5.New()
	h.Write(ns)
	h.Write([]byte(hostname))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x30
	u[8] = u[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]))
}

func (s *Store) remotePath(udid string) (string, error) {
	if !ValidUDID(udid) {
		return "", fmt.Errorf("pairrecord: store: invalid UDID %q", udid)
	}
	return filepath.Join(s.dir, "remote_"+udid+".plist"), nil
}

// SaveRemote writes r as remote_<UDID>.plist (XML, 0600), atomically.
func (s *Store) SaveRemote(udid string, r *Remote) error {
	if err := r.Check(); err != nil {
		return err
	}
	path, err := s.remotePath(udid)
	if err != nil {
		return err
	}
	c := *r
	c.HostIdentifier = c.Identifier
	data, err := plist.MarshalIndent(&c, plist.XMLFormat, "\t")
	if err != nil {
		return fmt.Errorf("pairrecord: RemotePairing record: %w", err)
	}
	if err := s.writeFile(path, data); err != nil {
		return fmt.Errorf("pairrecord: store: save RemotePairing %s: %w", udid, err)
	}
	return nil
}

// LoadRemote reads the store's RemotePairing record for udid; ErrNoRemoteRecord if there is none
// (even when a lockdown record for udid exists).
func (s *Store) LoadRemote(udid string) (*Remote, error) {
	path, err := s.remotePath(udid)
	if err != nil {
		return nil, err
	}
	r, err := LoadRemoteFile(path, "")
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w for %s in %s (a lockdown pair record is not one)", ErrNoRemoteRecord, udid, s)
	}
	return r, err
}

// LoadRemoteFile reads a RemotePairing record: iosmux's own, pymobiledevice3's
// remote_<id>.plist, appium's appletv-pairing file (same keys) or idevice's RpPairingFile
// (identifier stored, alt_irk = the device's). Records without a stored
// identifier get HostIdentifier(hostname) — what those tools derive — unless hostname is "",
// which then uses os.Hostname. A lockdown pair record is refused with an error saying so.
func LoadRemoteFile(path, hostname string) (*Remote, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if _, err := plist.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("pairrecord: %s: %w", path, err)
	}
	if _, ok := raw["HostCertificate"]; ok {
		return nil, fmt.Errorf("pairrecord: %s is a lockdown pair record, not a RemotePairing one", path)
	}
	var r Remote
	if err := plist.NewDecoder(bytes.NewReader(data)).Decode(&r); err != nil {
		return nil, fmt.Errorf("pairrecord: %s: %w", path, err)
	}
	if r.Identifier == "" {
		r.Identifier = r.HostIdentifier
	}
	if a, ok := raw["alt_irk"].([]byte); ok && len(r.DeviceAltIRK) == 0 { // idevice: the device's altIRK
		r.DeviceAltIRK = a
	}
	if r.Identifier == "" {
		if hostname == "" {
			if hostname, err = os.Hostname(); err != nil {
				return nil, fmt.Errorf("pairrecord: %s: no stored host identifier and no hostname: %w", path, err)
			}
		}
		r.Identifier = HostIdentifier(hostname)
	}
	r.HostIdentifier = r.Identifier
	if len(r.PublicKey) == 0 && len(r.PrivateKey) == ed25519.SeedSize {
		r.PublicKey = r.Key().Public().(ed25519.PublicKey)
	}
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return &r, nil
}

// Pymobiledevice3Remote is pymobiledevice3's RemotePairing record for the device whose handshake
// identifier is id: ~/.pymobiledevice3/remote_<id>.plist.
func Pymobiledevice3Remote(id string) (string, error) {
	if !ValidUDID(id) {
		return "", fmt.Errorf("pairrecord: invalid device identifier %q", id)
	}
	dir, err := Pymobiledevice3Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "remote_"+id+".plist"), nil
}

// String describes r without its secrets (private_key, remote_unlock_host_key).
func (r *Remote) String() string {
	if r == nil {
		return "remotepairing(nil)"
	}
	return fmt.Sprintf("remotepairing(identifier=%s device=%s device_identifier=%s private_key=<redacted>)",
		r.Identifier, r.DeviceUDID, r.DeviceIdentifier)
}

// GoString keeps %#v from printing the private key.
func (r *Remote) GoString() string { return r.String() }

// LogValue keeps slog from printing the private key.
func (r *Remote) LogValue() slog.Value { return slog.StringValue(r.String()) }

// LoadGoIOSSelfIdentity reads go-ios's selfIdentity.plist (pair-records.md §5): one host
// identity (identifier, privateKey, publicKey) that go-ios uses for every device.
func LoadGoIOSSelfIdentity(path string) (*Remote, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	var g struct {
		Identifier string `plist:"identifier"`
		PrivateKey []byte `plist:"privateKey"`
		PublicKey  []byte `plist:"publicKey"`
	}
	if _, err := plist.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("pairrecord: %s: %w", path, err)
	}
	r := &Remote{Identifier: g.Identifier, HostIdentifier: g.Identifier, PrivateKey: g.PrivateKey, PublicKey: g.PublicKey}
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("%w (go-ios %s)", err, path)
	}
	return r, nil
}

// readBounded reads a record file of at most maxFileSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("pairrecord: %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("pairrecord: %s is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}
