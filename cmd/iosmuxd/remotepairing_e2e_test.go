package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// untrustedSim serves a fresh simulated device's untrusted RSD on loopback.
func untrustedSim(t *testing.T, name string) (*sim.Device, string) {
	t.Helper()
	d := sim.NewDevice(profile.Default(), name, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := d.ServeRSD(ctx, sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{Untrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cancel() })
	return d, r.Addr().String()
}

// runDaemonWith runs the daemon in-process with args; the returned stop ends it and waits.
func runDaemonWith(t *testing.T, args ...string) (*env, func()) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := newServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	go func() { done <- runDaemon(ctx, f, ln, log) }()
	var once bool
	stop := func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return &env{t: t, api: ln.Addr().String()}, stop
}

// trustedRSDThrough checks that the RSD published for udid is that device's trusted one (a
// RemotePairing tunnel's), reached through the tunnel.
func (e *env) trustedRSDThrough(udid string) {
	e.t.Helper()
	h := e.rsdThrough(udid)
	if h.UDID() != udid {
		e.t.Fatalf("tunnel reaches %s", h.UDID())
	}
	if _, ok := h.Service("com.apple.mobile.lockdown.remote.trusted"); !ok {
		e.t.Fatalf("the published RSD is not the tunnel's trusted one: %d services", len(h.Services))
	}
}

// TestDaemonRemotePairing: the daemon pairs with a fresh device found by its untrusted RSD
// (Trust accepted), stores a 0600 RemotePairing record, tunnels over TCP+TLS-PSK and publishes
// the trusted RSD; restarted, it pair-verifies with the record and no Trust prompt.
func TestDaemonRemotePairing(t *testing.T) {
	d, addr := untrustedSim(t, "rp-e2e")
	state := t.TempDir()
	args := []string{"--no-usbmux", "--device", addr, "--backend", "userspace", "--state-dir", state, "--liveness", "500ms"}
	e, stop := runDaemonWith(t, args...)
	e.waitPublished(d.UDID)
	e.trustedRSDThrough(d.UDID)
	st, _ := e.device(d.UDID)
	if st.Backend != "userspace" || st.DeviceName != d.DeviceName {
		t.Fatalf("status %+v", st)
	}
	rec := filepath.Join(state, "remote_"+d.UDID+".plist")
	fi, err := os.Stat(rec)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %v %v", fi, err)
	}
	if hs := d.RemotePairingHosts(); len(hs) != 1 {
		t.Fatalf("device paired hosts %v", hs)
	}
	stop()

	d.SetTrust(sim.TrustDeny) // a second Trust prompt would now fail
	e, _ = runDaemonWith(t, args...)
	e.waitPublished(d.UDID)
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatalf("after restart the tunnel reaches %s", h.UDID())
	}
	if hs := d.RemotePairingHosts(); len(hs) != 1 {
		t.Fatalf("after restart the device has paired hosts %v (paired again?)", hs)
	}
}

// TestDaemonRemotePairingDenied: Don't Trust leaves the device unpublished with an error that
// says so, writes no record, and another device keeps being served.
func TestDaemonRemotePairingDenied(t *testing.T) {
	denied, addr := untrustedSim(t, "rp-denied")
	denied.SetTrust(sim.TrustDeny)
	other, otherAddr := untrustedSim(t, "rp-other")
	state := t.TempDir()
	e, _ := runDaemonWith(t, "--no-usbmux", "--device", addr, "--device", otherAddr, "--backend", "userspace", "--state-dir", state)
	e.waitPublished(other.UDID)
	waitFor(t, "the denial in the status route", func() bool {
		st, ok := e.device(denied.UDID)
		return ok && strings.Contains(st.LastError, "Trust denied")
	})
	if _, ok := e.tunnels()[denied.UDID]; ok {
		t.Fatal("a device that denied Trust was published")
	}
	if _, err := os.Stat(filepath.Join(state, "remote_"+denied.UDID+".plist")); !os.IsNotExist(err) {
		t.Fatalf("a record was written for the denied device: %v", err)
	}
	if hs := denied.RemotePairingHosts(); len(hs) != 0 {
		t.Fatalf("denied device stored %v", hs)
	}
}

// startSimulate runs `iosmuxd simulate args…` as a process until the test ends and returns the
// endpoints it prints ("NAME ADDRESS" lines) once every name in want has appeared.
func startSimulate(t testing.TB, want []string, args ...string) map[string]string {
	t.Helper()
	return runSimulate(t, exec.Command(os.Args[0], append([]string{"simulate"}, args...)...), want, args)
}

// runSimulate starts cmd (an `iosmuxd simulate` command line), kills it when the test ends and
// returns the "NAME ADDRESS" lines it prints once every name in want has appeared.
func runSimulate(t testing.TB, cmd *exec.Cmd, want []string, args []string) map[string]string {
	t.Helper()
	cmd.Env = append(os.Environ(), "IOSMUXD_RUN_MAIN=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs peertest.LogBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("simulate %v log:\n%s", args, logs.String())
		}
	})
	lines := map[string]string{}
	missing := func() bool {
		for _, w := range want {
			if lines[w] == "" {
				return true
			}
		}
		return false
	}
	sc := bufio.NewScanner(out)
	for missing() && sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			lines[k] = v
		}
	}
	if missing() {
		t.Fatalf("simulate printed %v, want %v", lines, want)
	}
	go func() { // keep draining so the process never blocks on stdout
		for sc.Scan() {
		}
	}()
	return lines
}

// TestPairCommandRemotePairing: `iosmuxd pair` pairs over RemotePairing with `iosmuxd simulate`,
// by its RPPairing port and by its untrusted RSD; the daemon then tunnels with the record.
func TestPairCommandRemotePairing(t *testing.T) {
	ep := startSimulate(t, []string{"udid", "rsd", "remotepairing"}, "--rsd", "127.0.0.1:0", "--untrusted", "--remotepairing", "127.0.0.1:0")
	state := t.TempDir()
	for _, by := range [][]string{{"--remotepairing", ep["remotepairing"]}, {"--device", ep["rsd"]}} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"pair", "--state-dir", state}, by...), &out, &errb); code != 0 {
			t.Fatalf("pair %v: %d %s", by, code, errb.String())
		}
		if !strings.Contains(out.String(), "paired "+ep["udid"]+" over RemotePairing") || !strings.Contains(errb.String(), "tap Trust") {
			t.Fatalf("pair %v said %q / %q", by, out.String(), errb.String())
		}
	}
	if fi, err := os.Stat(filepath.Join(state, "remote_"+ep["udid"]+".plist")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %v %v", fi, err)
	}
	e, _ := runDaemonWith(t, "--no-usbmux", "--no-pair", "--device", ep["rsd"], "--backend", "userspace", "--state-dir", state)
	e.waitPublished(ep["udid"])
	if h := e.rsdThrough(ep["udid"]); h.UDID() != ep["udid"] {
		t.Fatalf("tunnel reaches %s", h.UDID())
	}
	var out, errb bytes.Buffer
	if code := run([]string{"pair", "--device", "127.0.0.1:1", "--remotepairing", ep["remotepairing"]}, &out, &errb); code != 2 {
		t.Fatalf("both addresses: %d %s", code, errb.String())
	}
}
