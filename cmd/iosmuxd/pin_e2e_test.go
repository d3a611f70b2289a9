package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/pairrecord"
)

// TestPairCommandPIN: `iosmuxd pair --remotepairing` against `iosmuxd simulate --pin` (an Apple
// TV-style device: PIN, no Trust prompt). Without --pin it stops with a hint and spends no PIN
// try; a wrong PIN is refused clearly; neither leaves a record. The right PIN stores a 0600
// record whose key pair-verifies with the device (and another key does not).
func TestPairCommandPIN(t *testing.T) {
	const pin = "314159"
	ep := startSimulate(t, []string{"udid", "remotepairing"}, "--remotepairing", "127.0.0.1:0", "--pin", pin)
	addr, udid := ep["remotepairing"], ep["udid"]
	state := t.TempDir()
	record := filepath.Join(state, "remote_"+udid+".plist")
	pair := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"pair", "--state-dir", state, "--timeout", "30s"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	noRecord := func(when string) {
		t.Helper()
		if _, err := os.Stat(record); !os.IsNotExist(err) {
			t.Fatalf("%s: a record exists (%v)", when, err)
		}
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no-pin", []string{"--remotepairing", addr}, 1, "the device shows a PIN for pairing: run again with --pin"},
		{"wrong-pin", []string{"--remotepairing", addr, "--pin", "271828"}, 1, "the device refused the PIN"},
		{"bad-pin", []string{"--remotepairing", addr, "--pin", "31a159"}, 2, "digits only"},
		{"short-pin", []string{"--remotepairing", addr, "--pin", "12"}, 2, "4 to 8 digits"},
		{"pin-over-usbmux", []string{"--usbmux", "unix:/nonexistent", "--pin", pin}, 2, "--pin is for RemotePairing"},
	} {
		code, _, errs := pair(c.args...)
		if code != c.code || !strings.Contains(errs, c.says) {
			t.Errorf("%s: exit %d (want %d), stderr %q (want %q)", c.name, code, c.code, errs, c.says)
		}
		if strings.Contains(errs, pin) {
			t.Errorf("%s: stderr shows the PIN: %q", c.name, errs)
		}
		noRecord(c.name)
	}

	code, out, errs := pair("--remotepairing", addr, "--pin", pin)
	if code != 0 || !strings.Contains(out, "paired "+udid+" over RemotePairing") {
		t.Fatalf("pair with the PIN: exit %d, %q / %q", code, out, errs)
	}
	fi, err := os.Stat(record)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %v %v", fi, err)
	}
	store, err := pairrecord.OpenStore(state)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := store.LoadRemote(udid)
	if err != nil {
		t.Fatal(err)
	}
	if err := pairVerify(t, addr, rec.Identifier, rec.Key()); err != nil {
		t.Fatalf("pair-verify with the stored record: %v", err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	var pe *pairing.PeerError
	if err := pairVerify(t, addr, rec.Identifier, other); !errors.As(err, &pe) {
		t.Fatalf("pair-verify with another key: %v, want the device's refusal", err)
	}
}

// pairVerify runs a fresh control connection's handshake and pair-verify with (id, key).
func pairVerify(t *testing.T, addr, id string, key ed25519.PrivateKey) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h := pairing.NewHost(pairing.NewFramedTransport(nc), pairing.HostConfig{
		Identity: pairing.Identity{Identifier: id, Key: key}, Name: "iosmux-test"})
	if _, err := h.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = h.Verify(ctx)
	return err
}
