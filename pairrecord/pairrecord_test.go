package pairrecord

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"

	"howett.net/plist"
)

// deviceKey is one RSA key shared by the tests (generation is slow under -race).
var deviceKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func devicePublicPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&deviceKey().PublicKey)})
}

var generated = sync.OnceValues(func() (*Record, error) {
	return New(devicePublicPEM(), Options{SystemBUID: "30142955-444094379208051516", UDID: "00008101-000A1B2C3D4E5F01",
		WiFiMACAddress: "02:53:49:00:00:01"})
})

func newRecord(t *testing.T) *Record {
	t.Helper()
	r, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	return r.Clone()
}

func TestNewRecord(t *testing.T) {
	r := newRecord(t)
	if len(r.HostID) != 36 || r.HostID != strings.ToUpper(r.HostID) || r.SystemBUID != "30142955-444094379208051516" {
		t.Fatalf("identity %q %q", r.HostID, r.SystemBUID)
	}
	root, err := ParseCertificate(r.RootCertificate)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ParseCertificate(r.HostCertificate)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ParseCertificate(r.DeviceCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || !root.BasicConstraintsValid || root.CheckSignatureFrom(root) != nil {
		t.Fatal("root is not a self-signed CA")
	}
	for name, c := range map[string]*x509.Certificate{"host": host, "device": dev} {
		if c.IsCA || c.CheckSignatureFrom(root) != nil || c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			t.Fatalf("%s certificate: CA %v, signature %v", name, c.IsCA, c.CheckSignatureFrom(root))
		}
		if c.NotAfter.Sub(c.NotBefore) < 9*365*24*time.Hour {
			t.Fatalf("%s certificate valid only %v", name, c.NotAfter.Sub(c.NotBefore))
		}
	}
	if pub, ok := dev.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&deviceKey().PublicKey) {
		t.Fatal("DeviceCertificate does not carry the device key")
	}
	for _, k := range [][]byte{r.HostPrivateKey, r.RootPrivateKey} {
		if !bytes.HasPrefix(k, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Fatalf("key is not PKCS#8 PEM: %.30q", k)
		}
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	pr := r.PairRequest()
	for _, k := range []string{KeyHostPrivateKey, KeyRootPrivateKey, KeyEscrowBag} {
		if _, ok := pr[k]; ok {
			t.Fatalf("Pair request carries %s", k)
		}
	}
	if len(pr) != 5 || pr[KeyHostID] != r.HostID {
		t.Fatalf("Pair request %v", pr)
	}
	// Two records never share keys or HostIDs.
	r2, err := New(devicePublicPEM(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r2.HostID == r.HostID || bytes.Equal(r2.HostPrivateKey, r.HostPrivateKey) || r2.SystemBUID == "" {
		t.Fatal("records are not fresh")
	}
}

func TestNewRejectsBadKey(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("not pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte{1, 2}})} {
		if _, err := New(in, Options{}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("New(%q): %v", in, err)
		}
	}
	pkix, _ := x509.MarshalPKIXPublicKey(&deviceKey().PublicKey)
	if _, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})); err != nil {
		t.Fatalf("PKIX public key: %v", err)
	}
}

func TestRoundTripKeepsUnknownKeys(t *testing.T) {
	r := newRecord(t)
	r.EscrowBag = []byte{1, 2, 3}
	r.Extra = map[string]any{"FutureKey": "x", "Nested": map[string]any{"a": uint64(1)}}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<?xml")) {
		t.Fatal("not XML")
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.HostID != r.HostID || !bytes.Equal(got.HostPrivateKey, r.HostPrivateKey) || !bytes.Equal(got.EscrowBag, r.EscrowBag) ||
		got.WiFiMACAddress != r.WiFiMACAddress || got.UDID != r.UDID || got.Extra["FutureKey"] != "x" {
		t.Fatalf("round trip lost data: %v", got)
	}
	if n, _ := got.Extra["Nested"].(map[string]any); n["a"] != uint64(1) {
		t.Fatalf("nested extra %v", got.Extra["Nested"])
	}
	// Binary plists parse too.
	bin, err := plist.Marshal(r.Map(), plist.BinaryFormat)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Parse(bin); err != nil || got.HostID != r.HostID {
		t.Fatalf("binary: %v %v", got, err)
	}
}

func TestParseLenient(t *testing.T) {
	// Certificates as strings (JSON-derived records) are accepted.
	b, _ := plist.Marshal(map[string]any{KeyHostID: "H", KeyHostCertificate: "-----BEGIN CERTIFICATE-----"}, plist.XMLFormat)
	r, err := Parse(b)
	if err != nil || string(r.HostCertificate) != "-----BEGIN CERTIFICATE-----" {
		t.Fatalf("%v %v", r, err)
	}
	for _, bad := range [][]byte{
		nil,
		[]byte("garbage"),
		[]byte(`<?xml version="1.0"?><plist><array/></plist>`),
		mustPlist(t, map[string]any{KeyHostID: uint64(3)}),
		mustPlist(t, map[string]any{KeyHostPrivateKey: true}),
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Parse(%q): %v", bad, err)
		}
	}
}

func mustPlist(t *testing.T, v any) []byte {
	t.Helper()
	b, err := plist.Marshal(v, plist.XMLFormat)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecretsNeverPrinted formats a record every usual way and checks no key material shows.
func TestSecretsNeverPrinted(t *testing.T) {
	r := newRecord(t)
	r.EscrowBag = []byte("ESCROW-SECRET-BYTES")
	secrets := [][]byte{r.HostPrivateKey, r.RootPrivateKey, r.EscrowBag}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("record", "rec", r)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("record", "rec", r)
	outputs := []string{
		fmt.Sprint(r), fmt.Sprintf("%v", r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprintf("%s", r),
		fmt.Sprintf("%q", r), fmt.Sprintf("%x", r), r.String(), logBuf.String(),
	}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, string(s)) || strings.Contains(out, fmt.Sprintf("%x", s)) {
				t.Fatalf("secret printed in %q", out)
			}
		}
		if strings.Contains(out, "PRIVATE KEY") {
			t.Fatalf("key PEM printed: %q", out)
		}
	}
	if !strings.Contains(outputs[0], r.HostID) || !strings.Contains(outputs[0], "HostPrivateKey=<redacted>") {
		t.Fatalf("String is not useful: %s", outputs[0])
	}
}

func TestStorePermissionsAndAtomicity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "store")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != DirMode {
		t.Fatalf("new store directory mode %v", st.Mode().Perm())
	}
	udid := "00008101-000A1B2C3D4E5F01"
	r := newRecord(t)
	if err := s.Save(udid, r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, udid+".plist")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != FileMode {
		t.Fatalf("record file mode %v %v", st.Mode().Perm(), err)
	}
	// Overwrite, then check nothing but the record is left in the directory.
	r.HostID = "SECOND"
	if err := s.Save(udid, r); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries (temporary files left?)", len(ents))
	}
	got, err := s.Load(context.Background(), udid)
	if err != nil || got.HostID != "SECOND" {
		t.Fatalf("Load %v %v", got, err)
	}
	if ids, err := s.List(); err != nil || len(ids) != 1 || ids[0] != udid {
		t.Fatalf("List %v %v", ids, err)
	}
	if err := s.Delete(udid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background(), udid); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	if err := s.Delete(udid); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	// A store directory someone widened is tightened again.
	os.Chmod(dir, 0o755)
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != DirMode {
		t.Fatalf("reopened store directory mode %v", st.Mode().Perm())
	}
}

func TestStoreRejectsBadUDID(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "../x", "a/b", "x.plist", ".", strings.Repeat("A", 65)} {
		if err := s.Save(u, &Record{HostID: "H"}); err == nil {
			t.Fatalf("Save(%q) accepted", u)
		}
		if _, err := s.Load(context.Background(), u); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("Load(%q): %v", u, err)
		}
	}
}

// writeSample writes a record file as another tool would: XML or binary plist.
func writeSample(t *testing.T, dir, name string, r *Record, format int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := plist.Marshal(r.Map(), format)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImporters(t *testing.T) {
	ctx := context.Background()
	udid := "00008101-000A1B2C3D4E5F01"
	base := newRecord(t)

	// libimobiledevice: /var/lib/lockdown/<UDID>.plist (XML) plus SystemConfiguration.plist.
	limdDir := filepath.Join(t.TempDir(), "lockdown")
	limdRec := base.Clone()
	limdRec.HostID = "LIMD"
	writeSample(t, limdDir, udid+".plist", limdRec, plist.XMLFormat)
	writeSample(t, limdDir, "SystemConfiguration.plist", &Record{SystemBUID: "BUID-FROM-FILE"}, plist.XMLFormat)
	limd := DirSource{Dir: limdDir, Name: "libimobiledevice"}

	// pymobiledevice3: ~/.pymobiledevice3/<UDID>.plist, found through $HOME; stored here in
	// binary form and under the dash-less UDID to exercise both.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SUDO_USER", "")
	pmdRec := base.Clone()
	pmdRec.HostID = "PMD3"
	dashless := strings.ReplaceAll(udid, "-", "")
	writeSample(t, filepath.Join(home, ".pymobiledevice3"), dashless+".plist", pmdRec, plist.BinaryFormat)
	pmd := Pymobiledevice3()
	if pmd == nil || !strings.HasPrefix(pmd.String(), "pymobiledevice3 ("+home) {
		t.Fatalf("pymobiledevice3 source %v", pmd)
	}

	for _, tc := range []struct {
		src  Source
		want string
	}{{limd, "LIMD"}, {pmd, "PMD3"}} {
		r, err := tc.src.Load(ctx, udid)
		if err != nil || r.HostID != tc.want || r.Validate() != nil {
			t.Fatalf("%s: %v %v", tc.src, r, err)
		}
	}
	if buid, err := ReadSystemBUID(limdDir); err != nil || buid != "BUID-FROM-FILE" {
		t.Fatalf("ReadSystemBUID %q %v", buid, err)
	}

	// Find: first source with the record wins; nil and empty sources are skipped.
	empty := DirSource{Dir: t.TempDir()}
	r, src, err := Find(ctx, udid, nil, empty, pmd, limd)
	if err != nil || r.HostID != "PMD3" || src != pmd {
		t.Fatalf("Find: %v %v %v", r, src, err)
	}
	// A broken file does not stop the search, and is reported when nothing is found.
	brokenDir := t.TempDir()
	os.WriteFile(filepath.Join(brokenDir, udid+".plist"), []byte("garbage"), 0o600)
	broken := DirSource{Dir: brokenDir, Name: "broken"}
	if r, _, err := Find(ctx, udid, broken, limd); err != nil || r.HostID != "LIMD" {
		t.Fatalf("Find past a broken file: %v %v", r, err)
	}
	_, _, err = Find(ctx, udid, broken, empty)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Find with nothing usable: %v", err)
	}
}

func TestUsbmuxdSource(t *testing.T) {
	ctx := context.Background()
	r := newRecord(t)
	data, _ := r.Marshal()
	src := Usbmuxd(fakeMux{"U1": data}, "")
	if got, err := src.Load(ctx, "U1"); err != nil || got.HostID != r.HostID {
		t.Fatalf("Load %v %v", got, err)
	}
	if _, err := src.Load(ctx, "U2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

type fakeMux map[string][]byte

func (f fakeMux) ReadPairRecordData(_ context.Context, udid string) ([]byte, error) {
	if b, ok := f[udid]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("fake: %w", ErrNotFound)
}

func TestLoadFileRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadFile(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadFile(directory): %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><plist><dict><key>HostID</key><string>x</string></dict></plist>`))
	f.Add([]byte("bplist00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		peertest.BoundAllocs(t, len(b), 1024, func() {
			r, err := Parse(b)
			if err != nil {
				return
			}
			if _, err := r.Marshal(); err != nil {
				// Extra may hold values the encoder refuses; that must be an error, not a panic.
				return
			}
		})
	})
}

func TestStoreHostUUIDIsStablePerDevice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	udid := "00008101-000A1B2C3D4E001E"
	a, err := s.HostUUID(udid)
	if err != nil || a == ([16]byte{}) || a[6]>>4 != 4 {
		t.Fatalf("host UUID %x: %v", a, err)
	}
	s2, _ := OpenStore(dir)
	if b, err := s2.HostUUID(udid); err != nil || b != a {
		t.Fatalf("reopened store gives %x (%v), want %x", b, err, a)
	}
	if c, _ := s.HostUUID("00008101-000A1B2C3D4E0099"); c == a {
		t.Fatal("two devices share a host UUID")
	}
	fi, err := os.Stat(filepath.Join(dir, udid+".host-uuid"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host-uuid file: %v %v", fi, err)
	}
	os.WriteFile(filepath.Join(dir, udid+".host-uuid"), []byte("garbage"), 0o600)
	if _, err := s.HostUUID(udid); err == nil {
		t.Fatal("a garbled host-uuid file was accepted")
	}
	if _, err := s.HostUUID("../x"); err == nil {
		t.Fatal("bad UDID accepted")
	}
}

// TestParseRefusesPlistBomb: a ~300-byte binary plist that decodes to 14^5 copies of a
// 200-byte data object (about 100 MB) is refused before decoding, with little allocated.
func TestParseRefusesPlistBomb(t *testing.T) {
	bomb := peertest.PlistBomb(5, 14, 200)
	if len(bomb) > 512 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Parse(bomb)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse(bomb) = %v, want ErrInvalid", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("parsing a %d-byte record allocated %d bytes", len(bomb), grew)
	}
	// The same shape, small, is an ordinary (if odd) plist: the check is not a blanket refusal.
	if _, err := Parse(peertest.PlistBomb(1, 2, 16)); err != nil && strings.Contains(err.Error(), "limits") {
		t.Fatalf("a small plist was refused for its size: %v", err)
	}
}
