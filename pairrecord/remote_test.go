package pairrecord

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"howett.net/plist"

	"github.com/iosmux/iosmux/pairing"
)

func TestHostIdentifierVectors(t *testing.T) {
	for host, want := range map[string]string{
		"iosmux-test": "AB746A8E-26BC-3F08-9176-C0ABECD1D9C8",
		"localhost":   "DD8A91F6-CA32-30E0-983C-8F309D653045",
	} {
		if got := HostIdentifier(host); got != want {
			t.Errorf("%s: %s, want %s", host, got, want)
		}
	}
}

func TestRemoteStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	udid := "00008120-000A1B2C3D4E5F01"
	if _, err := s.LoadRemote(udid); !errors.Is(err, ErrNoRemoteRecord) {
		t.Fatalf("empty store: %v", err)
	}
	// A lockdown record for the same device is not a RemotePairing one.
	if err := s.Save(udid, newRecord(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadRemote(udid); !errors.Is(err, ErrNoRemoteRecord) || !strings.Contains(err.Error(), "lockdown") {
		t.Fatalf("lockdown record taken for RemotePairing: %v", err)
	}
	if _, err := LoadRemoteFile(filepath.Join(dir, udid+".plist"), "h"); err == nil || !strings.Contains(err.Error(), "is a lockdown pair record") {
		t.Fatalf("lockdown file read as RemotePairing: %v", err)
	}

	r, err := NewRemote("HOST-ID", udid)
	if err != nil {
		t.Fatal(err)
	}
	r.DeviceIdentifier, r.DeviceLTPK, r.DeviceAltIRK, r.RemoteUnlockHostKey = "DEV", make([]byte, 32), make([]byte, 16), "dW5sb2Nr"
	if err := s.SaveRemote(udid, r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "remote_"+udid+".plist")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != FileMode {
		t.Fatalf("record mode %v %v", st.Mode(), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != DirMode {
		t.Fatalf("dir mode %v", st.Mode())
	}
	raw, _ := os.ReadFile(path)
	var keys map[string]any
	if _, err := plist.Unmarshal(raw, &keys); err != nil || keys["host_identifier"] != "HOST-ID" || keys["identifier"] != "HOST-ID" {
		t.Fatalf("stored keys %v %v", keys, err)
	}
	back, err := s.LoadRemote(udid)
	if err != nil {
		t.Fatal(err)
	}
	if back.Identifier != "HOST-ID" || !bytes.Equal(back.PrivateKey, r.PrivateKey) || back.DeviceIdentifier != "DEV" ||
		back.RemoteUnlockHostKey != "dW5sb2Nr" || !back.Created.Equal(r.Created) {
		t.Fatalf("round trip %v", back)
	}
	if err := s.SaveRemote("../x", r); err == nil {
		t.Fatal("path escape accepted")
	}
}

func TestRemoteRejectsBadRecords(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, err := plist.Marshal(v, plist.XMLFormat)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	cases := map[string]string{
		write("short.plist", map[string]any{"private_key": []byte{1, 2}, "identifier": "H"}):                                "private_key is 2 bytes",
		write("mismatch.plist", map[string]any{"private_key": priv.Seed(), "public_key": []byte(other), "identifier": "H"}): "does not match",
	}
	big := filepath.Join(dir, "big.plist")
	os.WriteFile(big, make([]byte, maxFileSize+1), 0o600)
	cases[big] = "larger than"
	for p, want := range cases {
		if _, err := LoadRemoteFile(p, "h"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", filepath.Base(p), err, want)
		}
	}
}

func TestRemoteSecretsNeverPrinted(t *testing.T) {
	r, _ := NewRemote("HOST-ID", "UDID")
	r.RemoteUnlockHostKey = "UNLOCK-SECRET"
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("record", "rec", r)
	for _, out := range []string{fmt.Sprint(r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprintf("%x", r), logBuf.String()} {
		if strings.Contains(out, fmt.Sprintf("%x", r.PrivateKey)) || strings.Contains(out, string(r.PrivateKey)) || strings.Contains(out, "UNLOCK-SECRET") {
			t.Fatalf("secret printed: %q", out)
		}
		if !strings.Contains(fmt.Sprint(r), "HOST-ID") {
			t.Fatal("String is not useful")
		}
	}
}

// TestPymobiledevice3RemotePairVerifies: a record in pymobiledevice3's remote_<id>.plist layout
// (no stored identifier: derived from the hostname) pair-verifies against a device that paired
// with that identity.
func TestPymobiledevice3RemotePairVerifies(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "remote_00008120-000A1B2C3D4E5F01.plist")
	b, _ := plist.Marshal(map[string]any{"public_key": []byte(pub), "private_key": priv.Seed(), "remote_unlock_host_key": ""}, plist.XMLFormat)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRemoteFile(path, "iosmux-test")
	if err != nil {
		t.Fatal(err)
	}
	if r.Identifier != "AB746A8E-26BC-3F08-9176-C0ABECD1D9C8" {
		t.Fatalf("derived identifier %q", r.Identifier)
	}
	// The device knows the host by pymobiledevice3's identifier and public key.
	_, devKey, _ := ed25519.GenerateKey(nil)
	dev := pairing.Identity{Identifier: "DEV", Key: devKey}
	host := pairing.Identity{Identifier: r.Identifier, Key: r.Key()}
	h, _ := pairing.NewVerifyHost(host, nil)
	d, _ := pairing.NewVerifyDevice(dev, func(hid string) (ed25519.PublicKey, bool) {
		return pub, hid == "AB746A8E-26BC-3F08-9176-C0ABECD1D9C8"
	}, nil)
	m2, _ := d.HandleM1(h.M1())
	m3, err := h.HandleM2(m2)
	if err != nil {
		t.Fatal(err)
	}
	m4, err := d.HandleM3(m3)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleM4(m4); err != nil {
		t.Fatal(err)
	}
	// With a stored host_identifier (device-initiated pmd3 records) that one wins.
	b, _ = plist.Marshal(map[string]any{"private_key": priv.Seed(), "host_identifier": "STORED-ID"}, plist.XMLFormat)
	os.WriteFile(path, b, 0o600)
	if r, err := LoadRemoteFile(path, "iosmux-test"); err != nil || r.Identifier != "STORED-ID" || !bytes.Equal(r.PublicKey, pub) {
		t.Fatalf("host_identifier record: %v %v", r, err)
	}
}

func TestGoIOSAndIdeviceImporters(t *testing.T) {
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(nil)
	gp := filepath.Join(dir, "selfIdentity.plist")
	b, _ := plist.Marshal(map[string]any{"identifier": "7F6E3A10-0000-4000-8000-000000000001", "irk": make([]byte, 16),
		"privateKey": priv.Seed(), "publicKey": []byte(pub)}, plist.BinaryFormat)
	os.WriteFile(gp, b, 0o600)
	r, err := LoadGoIOSSelfIdentity(gp)
	if err != nil || r.Identifier != "7F6E3A10-0000-4000-8000-000000000001" || !bytes.Equal(r.PublicKey, pub) {
		t.Fatalf("go-ios: %v %v", r, err)
	}
	b, _ = plist.Marshal(map[string]any{"identifier": "x", "privateKey": []byte{1}}, plist.BinaryFormat)
	os.WriteFile(gp, b, 0o600)
	if _, err := LoadGoIOSSelfIdentity(gp); err == nil {
		t.Fatal("go-ios identity with a 1-byte key accepted")
	}

	ip := filepath.Join(dir, "idevice.plist")
	alt := bytes.Repeat([]byte{7}, 16)
	b, _ = plist.Marshal(map[string]any{"identifier": "ab746a8e-26bc-3f08-9176-c0abecd1d9c8", "private_key": priv.Seed(),
		"public_key": []byte(pub), "alt_irk": alt}, plist.XMLFormat)
	os.WriteFile(ip, b, 0o600)
	r, err = LoadRemoteFile(ip, "ignored")
	if err != nil || r.Identifier != "ab746a8e-26bc-3f08-9176-c0abecd1d9c8" || !bytes.Equal(r.DeviceAltIRK, alt) {
		t.Fatalf("idevice (lowercase identifier kept as signed): %v %v", r, err)
	}
}
