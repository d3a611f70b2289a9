package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// refused runs the CLI with args and checks it stops with a non-zero exit and one line on
// stderr that contains want.
func refused(t *testing.T, want string, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	msg := strings.TrimRight(errb.String(), "\n")
	if code == 0 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, want) {
		t.Fatalf("%q: exit %d, stderr %q (want one line with %q)", args, code, errb.String(), want)
	}
}

// freeAPI is a loopback address nothing listens on; a refused command must leave it so.
func freeAPI(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// notServing checks that nothing started on addr.
func notServing(t *testing.T, addr string) {
	t.Helper()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("something serves %s after a refused start", addr)
	}
}

func TestRefusesKernelBackendWithoutRoot(t *testing.T) {
	defer func(f func() int) { geteuid = f }(geteuid)
	defer func(f func() string) { kernelLack = f }(kernelLack)
	geteuid = func() int { return 1000 }
	kernelLack = func() string { return "the kernel backend needs the CAP_NET_ADMIN capability" }
	a := freeAPI(t)
	refused(t, "--backend kernel: the kernel backend needs the CAP_NET_ADMIN capability", "--api", a, "--backend", "kernel", "--state-dir", t.TempDir())
	notServing(t, a)
}

func TestRefusesUnknownLogLevel(t *testing.T) {
	a := freeAPI(t)
	refused(t, `--log-level "verbose"`, "--api", a, "--log-level", "verbose")
	notServing(t, a)
	refused(t, `--log-level "verbose"`, "simulate", "--rsd", "127.0.0.1:0", "--log-level", "verbose")
}

func TestRefusesUDPUsbmux(t *testing.T) {
	a := freeAPI(t)
	for _, v := range []string{"udp:127.0.0.1:27015", "udp:/tmp/usbmuxd", "http://127.0.0.1:27015"} {
		refused(t, "--usbmux", "--api", a, "--usbmux", v)
	}
	notServing(t, a)
	refused(t, "--usbmuxd", "simulate", "--usbmuxd", "udp:127.0.0.1:0")
}

func TestRefusesURLAsAPI(t *testing.T) {
	refused(t, "not a URL", "--api", "http://127.0.0.1:49151")
	refused(t, "not a URL", "list", "--api", "http://127.0.0.1:49151")
	refused(t, "not a URL", "status", "--api", "http://127.0.0.1:49151")
	refused(t, "loopback only", "list", "--api", "example.com:49151")
}

func TestRefusesOtherBadFlags(t *testing.T) {
	a := freeAPI(t)
	for _, tc := range []struct{ want string }{
		{"--mtu 0"}, {"--mtu-clamp 5"}, {"--liveness 0s"}, {"--liveness-timeout -1s"},
		{`--liveness-probe "icmp"`}, {`--shim "maybe"`}, {`--backend "nope"`},
	} {
		f := strings.Fields(tc.want)
		v := strings.Trim(f[1], `"`)
		refused(t, tc.want, "--api", a, f[0], v)
	}
	refused(t, "--devices 0", "--api", a, "--simulate", "--devices", "0")
	refused(t, `--refuse "udp"`, "simulate", "--rsd", "127.0.0.1:0", "--refuse", "udp")
	refused(t, "--no-usbmux without --device", "--api", a, "--no-usbmux")
	notServing(t, a)
}

func TestHelpUnknownCommandFails(t *testing.T) {
	refused(t, `unknown command "bogus"`, "help", "bogus")
	var out, errb bytes.Buffer
	if code := run([]string{"help", "simulate"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--usbmuxd") {
		t.Fatalf("help simulate: %d %q", code, out.String())
	}
}

// TestSimulateRefusesLiveSocket: a socket another process serves (a real usbmuxd) is neither
// deleted nor taken over; a stale one is replaced.
func TestSimulateRefusesLiveSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "usbmuxd")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused(t, "another process is serving", "simulate", "--usbmuxd", "unix:"+sock)
	if c, err := net.Dial("unix", sock); err != nil {
		t.Fatalf("the live socket was taken away: %v", err)
	} else {
		c.Close()
	}
	// A stale socket (nobody answers) is replaced.
	u := sim.NewUsbmuxd(context.Background(), sim.UsbmuxdOptions{})
	defer u.Close()
	stale := filepath.Join(t.TempDir(), "stale")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	if _, err := u.ListenUnix(stale); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
}

func TestImportRefusesEmptyRecord(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "00008101-000A1B2C3D4E5F01.plist")
	os.WriteFile(file, []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict/></plist>`), 0o600)
	refused(t, "no usable pair record", "import-pair-record", "--state-dir", filepath.Join(dir, "state"), file)
	if _, err := os.Stat(filepath.Join(dir, "state", "00008101-000A1B2C3D4E5F01.plist")); err == nil {
		t.Fatal("an empty record was imported")
	}
}

// TestImportRefusesFileNameAsUDID: a usable record without a UDID in a file whose name is no
// UDID is refused unless --udid names the device.
func TestImportRefusesFileNameAsUDID(t *testing.T) {
	dir := t.TempDir()
	u, sock := unixUsbmuxd(t, dir)
	d := sim.NewDevice(profile.Default(), "import", nil)
	u.Plug(d)
	var out, errb bytes.Buffer
	if code := run([]string{"pair", "--usbmux", "unix:" + sock, "--state-dir", filepath.Join(dir, "paired")}, &out, &errb); code != 0 {
		t.Fatalf("pair: %s", errb.String())
	}
	rec, err := pairrecord.LoadFile(filepath.Join(dir, "paired", d.UDID+".plist"))
	if err != nil {
		t.Fatal(err)
	}
	rec.UDID = "" // a record without its own UDID key, as some tools write them
	data, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "my-backup.plist")
	os.WriteFile(file, data, 0o600)
	state := filepath.Join(dir, "state")
	refused(t, "pass --udid", "import-pair-record", "--state-dir", state, file)
	refused(t, "not a device UDID", "import-pair-record", "--state-dir", state, "--udid", "../etc", file)
	if code := run([]string{"import-pair-record", "--state-dir", state, "--udid", d.UDID, file}, &out, &errb); code != 0 {
		t.Fatalf("import with --udid: %s", errb.String())
	}
}

// TestUsbmuxAddressForms: every USBMUXD_SOCKET_ADDRESS form that libimobiledevice,
// pymobiledevice3 and go-ios users have reaches the usbmuxd.
func TestUsbmuxAddressForms(t *testing.T) {
	dir := t.TempDir()
	u, sock := unixUsbmuxd(t, dir)
	ta, err := u.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Plug(sim.NewDevice(profile.Default(), "forms", nil))
	for _, form := range []string{"UNIX:" + sock, "unix:" + sock, "unix://" + sock, sock,
		ta.String(), "tcp:" + ta.String(), "tcp://" + ta.String()} {
		t.Setenv(lockdown.EnvSocketAddress, form)
		m, err := lockdown.NewMux("")
		if err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		devs, err := m.ListDevices(context.Background())
		if err != nil || len(devs) != 1 {
			t.Fatalf("%s: %d devices, %v", form, len(devs), err)
		}
		f := newServeFlags(newFlagSet())
		f.usbmux = ""
		if _, err := f.resolve(); err != nil {
			t.Fatalf("%s: the daemon refuses it: %v", form, err)
		}
	}
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }
