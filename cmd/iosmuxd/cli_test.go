package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// TestPairAndImportCommands pairs with a virtual phone through `iosmuxd pair`, checks the
// record is kept 0600 in a 0700 directory, then imports that file into another store.
func TestPairAndImportCommands(t *testing.T) {
	dir := t.TempDir()
	u, sock := unixUsbmuxd(t, dir)
	d := sim.NewDevice(profile.Default(), "cli", nil)
	u.Plug(d)
	state := filepath.Join(dir, "state")
	var out, errb bytes.Buffer
	if code := run([]string{"pair", "--usbmux", "unix:" + sock, "--state-dir", state}, &out, &errb); code != 0 {
		t.Fatalf("pair: exit %d: %s", code, errb.String())
	}
	file := filepath.Join(state, d.UDID+".plist")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %v %v", fi, err)
	}
	if di, _ := os.Stat(state); di.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode %v", di.Mode().Perm())
	}
	if _, ok := u.PairRecord(d.UDID); !ok {
		t.Fatal("usbmuxd did not get the record (SavePairRecord)")
	}

	other := filepath.Join(dir, "other")
	out.Reset()
	if code := run([]string{"import-pair-record", "--state-dir", other, file}, &out, &errb); code != 0 {
		t.Fatalf("import: exit %d: %s", code, errb.String())
	}
	a, _ := os.ReadFile(file)
	b, err := os.ReadFile(filepath.Join(other, d.UDID+".plist"))
	if err != nil || !bytes.Contains(b, []byte("HostPrivateKey")) || len(a) == 0 {
		t.Fatalf("imported record: %v", err)
	}
	if strings.Contains(out.String()+errb.String(), "PRIVATE KEY") {
		t.Fatal("a private key reached the output")
	}

	// A denied pairing fails with a clear message and keeps nothing.
	d2 := sim.NewDevice(profile.Default(), "cli-deny", nil)
	d2.SetTrust(sim.TrustDeny)
	u.Plug(d2)
	errb.Reset()
	if code := run([]string{"pair", "--usbmux", "unix:" + sock, "--udid", d2.UDID, "--state-dir", state}, &out, &errb); code == 0 {
		t.Fatal("pairing a denying device succeeded")
	}
	if !strings.Contains(errb.String(), "UserDeniedPairing") && !strings.Contains(strings.ToLower(errb.String()), "denied") {
		t.Fatalf("deny message: %s", errb.String())
	}
	if _, err := os.Stat(filepath.Join(state, d2.UDID+".plist")); err == nil {
		t.Fatal("a record was kept for a denied pairing")
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--simulate") || !strings.Contains(out.String(), "-api") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	for _, args := range [][]string{{"--api", "0.0.0.0:49151", "--no-usbmux", "--device", "127.0.0.1:1"}, {"--backend", "nope"}, {"frobnicate"}, {"simulate"}} {
		errb.Reset()
		if code := run(args, &out, &errb); code == 0 || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// TestPairOnePhoneListedTwice: a phone listed as USB and Network is one device to `pair`.
func TestPairOnePhoneListedTwice(t *testing.T) {
	dir := t.TempDir()
	u, sock := unixUsbmuxd(t, dir)
	d := sim.NewDevice(profile.Default(), "twice", nil)
	u.Plug(d)
	u.PlugVia(d, sim.ConnectionTypeNetwork)
	var out, errb bytes.Buffer
	if code := run([]string{"pair", "--usbmux", "unix:" + sock, "--state-dir", filepath.Join(dir, "state")}, &out, &errb); code != 0 {
		t.Fatalf("pair: exit %d: %s", code, errb.String())
	}
	if len(d.PairedHostIDs()) != 1 {
		t.Fatal("not paired")
	}
}

// unixUsbmuxd serves a simulated usbmuxd on a socket in dir for the test's lifetime.
func unixUsbmuxd(t *testing.T, dir string) (*sim.Usbmuxd, string) {
	t.Helper()
	u := sim.NewUsbmuxd(context.Background(), sim.UsbmuxdOptions{})
	t.Cleanup(u.Close)
	sock := filepath.Join(dir, "usbmuxd")
	if _, err := u.ListenUnix(sock); err != nil {
		t.Fatal(err)
	}
	return u, sock
}
