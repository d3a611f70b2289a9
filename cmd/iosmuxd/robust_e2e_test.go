package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// carrying is the connection type of the path that carries udid's tunnel and its state.
func (e *env) carrying(udid string) (string, api.DeviceStatus) {
	st, ok := e.device(udid)
	if !ok {
		return "", st
	}
	for _, p := range st.Paths {
		if p.Carrying {
			return p.ConnectionType, st
		}
	}
	return "", st
}

func (e *env) sessionCount(udid string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions[udid])
}

// TestDaemonUSBAndNetworkPaths: a phone listed by usbmuxd as USB and Network stays published
// while either path remains, and its tunnel moves back to USB when USB returns.
func TestDaemonUSBAndNetworkPaths(t *testing.T) {
	e := startEnvWith(t, 1, envOptions{beforeDaemon: func(e *env) { e.u.PlugVia(e.devs[0], sim.ConnectionTypeNetwork) }})
	d := e.devs[0]
	publishedOver := func(ct string) func() bool {
		return func() bool {
			c, st := e.carrying(d.UDID)
			tun := e.tunnels()[d.UDID]
			return c == ct && st.State == "published" && len(tun) == 1 && tun[0].Interface == "usbmux-"+d.UDID+"-"+ct
		}
	}
	waitFor(t, "publication over USB", publishedOver("USB"))
	if _, st := e.carrying(d.UDID); len(st.Paths) != 2 {
		t.Fatalf("status shows %d paths, want USB and Network: %+v", len(st.Paths), st.Paths)
	}
	e.u.UnplugVia(d, sim.ConnectionTypeUSB)
	waitFor(t, "failover to the Network path", publishedOver("Network"))
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatal("the Network tunnel does not reach the device")
	}
	e.u.PlugVia(d, sim.ConnectionTypeUSB)
	waitFor(t, "the tunnel back on USB", publishedOver("USB"))
	sessions := e.sessionCount(d.UDID)
	e.u.UnplugVia(d, sim.ConnectionTypeNetwork)
	waitFor(t, "the Network path gone from the status", func() bool { _, st := e.carrying(d.UDID); return len(st.Paths) == 1 })
	if !publishedOver("USB")() || e.sessionCount(d.UDID) != sessions {
		t.Fatal("losing the idle Network path disturbed the USB tunnel")
	}
	e.rsdThrough(d.UDID)
	e.u.UnplugVia(d, sim.ConnectionTypeUSB)
	waitFor(t, "the device leaving with its last path", func() bool { _, ok := e.device(d.UDID); return !ok && len(e.tunnels()) == 0 })
}

// restartSimulator replaces the usbmuxd and its phones with fresh ones of the same identities:
// they know no host, and usbmuxd has no pair records (a phone reset, or a restarted
// `iosmuxd simulate`).
func (e *env) restartSimulator() {
	e.t.Helper()
	e.u.Close()
	u := sim.NewUsbmuxd(context.Background(), sim.UsbmuxdOptions{})
	if _, err := u.ListenUnix(e.sock); err != nil {
		e.t.Fatal(err)
	}
	for i := range e.devs {
		e.devs[i] = e.newSimDevice(i)
		u.Plug(e.devs[i])
	}
	e.u = u
}

// refusedRecords lists the pair records moved aside in the daemon's store.
func (e *env) refusedRecords(udid string) []string {
	m, _ := filepath.Glob(filepath.Join(e.state, udid+".plist.refused-*"))
	return m
}

// TestDaemonRepairsAfterReset: a phone that forgot the host is paired again and republished;
// the refused record is kept aside and the log asks for Trust.
func TestDaemonRepairsAfterReset(t *testing.T) {
	e := startEnv(t, 1, false)
	d := e.devs[0]
	e.waitPublished(d.UDID)
	first, err := os.ReadFile(filepath.Join(e.state, d.UDID+".plist"))
	if err != nil {
		t.Fatal(err)
	}
	e.restartSimulator()
	d = e.devs[0]
	waitFor(t, "republication after re-pairing", func() bool {
		return len(d.PairedHostIDs()) == 1 && len(e.tunnels()[d.UDID]) == 1
	})
	e.rsdThrough(d.UDID)
	if st, _ := e.device(d.UDID); st.Attempts != 1 || st.LastError != "" {
		t.Fatalf("re-pairing took %d attempts (last error %q); want it done within the first", st.Attempts, st.LastError)
	}
	aside := e.refusedRecords(d.UDID)
	if len(aside) != 1 {
		t.Fatalf("refused records kept: %v", aside)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || string(b) != string(first) {
		t.Fatalf("the record moved aside is not the refused one: %v", err)
	}
	if fi, err := os.Stat(aside[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("moved record mode %v %v", fi, err)
	}
	if !strings.Contains(e.logs.String(), "tap Trust on "+d.DeviceName) {
		t.Fatalf("the log does not ask for Trust on %q", d.DeviceName)
	}
}

// TestDaemonNoPairWaitsAfterReset: with --no-pair a reset phone shows that it needs pairing and
// is not paired behind the user's back; once paired by hand, start-tunnel publishes it.
func TestDaemonNoPairWaitsAfterReset(t *testing.T) {
	e := startEnvWith(t, 1, envOptions{flags: []string{"--no-pair"}, beforeDaemon: func(e *env) {
		// Paired beforehand, as `iosmuxd pair` would.
		var out, errb strings.Builder
		if code := run([]string{"pair", "--usbmux", "unix:" + e.sock, "--state-dir", e.state}, &out, &errb); code != 0 {
			e.t.Fatalf("pair: %s", errb.String())
		}
	}})
	d := e.devs[0]
	e.waitPublished(d.UDID)
	e.restartSimulator()
	d = e.devs[0]
	// Two failed attempts at least: the one that met the refusal and one that found no record
	// at all; the status must still say why (the reason is not lost to the retry).
	waitFor(t, "the needs-pairing state after a retry", func() bool {
		st, ok := e.device(d.UDID)
		return ok && st.State == "needs pairing" && st.Attempts >= 2
	})
	if st, _ := e.device(d.UDID); !strings.Contains(st.LastError, "refused its pair record") {
		t.Fatalf("needs pairing, but the status does not say the record was refused: %q", st.LastError)
	}
	if len(d.PairedHostIDs()) != 0 || len(e.tunnels()) != 0 {
		t.Fatal("paired or published with --no-pair")
	}
	if len(e.refusedRecords(d.UDID)) != 1 {
		t.Fatal("the refused record was not moved aside")
	}
	var out, errb strings.Builder
	if code := run([]string{"pair", "--usbmux", "unix:" + e.sock, "--state-dir", e.state}, &out, &errb); code != 0 {
		t.Fatalf("pair: %s", errb.String())
	}
	if code, body := e.get("/start-tunnel?udid="+d.UDID, nil); code != 200 {
		t.Fatalf("start-tunnel %d %s", code, body)
	}
	e.waitPublished(d.UDID)
}

// TestDaemonTrustStage: while the phone shows the Trust dialog the status names the stage and
// the log asks for Trust; /cancel stops the wait and nothing is published.
func TestDaemonTrustStage(t *testing.T) {
	e := startEnvHook(t, 1, false, sim.UsbmuxdOptions{}, func(e *env) { e.devs[0].SetTrust(sim.TrustNever) })
	d := e.devs[0]
	waitFor(t, "the Trust stage in the status route", func() bool {
		st, _ := e.device(d.UDID)
		return st.State == "opening: pairing: tap Trust on "+d.DeviceName
	})
	if !strings.Contains(e.logs.String(), "tap Trust on "+d.DeviceName) {
		t.Fatal("the log does not ask for Trust")
	}
	if code, _ := e.get("/cancel?udid="+d.UDID, nil); code != 200 {
		t.Fatal("cancel")
	}
	waitFor(t, "cancelled", func() bool { st, _ := e.device(d.UDID); return st.State == "cancelled" })
	if st, _ := e.device(d.UDID); st.LastError != "" || len(e.tunnels()) != 0 {
		t.Fatalf("after cancel: %q %v", st.LastError, e.tunnels())
	}
	d.SetTrust(sim.TrustAccept)
	if code, body := e.get("/start-tunnel?udid="+d.UDID, nil); code != 200 {
		t.Fatalf("start-tunnel %d %s", code, body)
	}
	e.waitPublished(d.UDID)
}

// TestDaemonCancelDuringOpening: /cancel while the phone stalls the CDTunnel handshake ends
// the build at once (no stage timeout is recorded) and leaves nothing published.
func TestDaemonCancelDuringOpening(t *testing.T) {
	e := startEnvHook(t, 1, false, sim.UsbmuxdOptions{}, func(e *env) {
		e.devs[0].SetTunnelOptions(sim.TunnelOptions{Stall: true})
	})
	d := e.devs[0]
	waitFor(t, "the stalled handshake", func() bool {
		st, _ := e.device(d.UDID)
		return st.State == "opening: CDTunnel handshake"
	})
	if code, _ := e.get("/clear_tunnels", nil); code != 200 {
		t.Fatal("clear_tunnels")
	}
	waitFor(t, "cancelled", func() bool { st, _ := e.device(d.UDID); return st.State == "cancelled" })
	st, _ := e.device(d.UDID)
	if st.LastError != "" || st.Attempts != 1 || len(e.tunnels()) != 0 {
		t.Fatalf("the build was not stopped by the cancel: %+v", st)
	}
	d.SetTunnelOptions(sim.TunnelOptions{})
	if code, body := e.get("/start-tunnel?udid="+d.UDID, nil); code != 200 {
		t.Fatalf("start-tunnel %d %s", code, body)
	}
	e.waitPublished(d.UDID)
}

// TestDaemonDetectsBlackhole: a tunnel whose device stops answering (transport still up) is
// found dead by the ICMPv6 probe and rebuilt once the device answers again.
func TestDaemonDetectsBlackhole(t *testing.T) {
	e := startEnv(t, 1, false)
	d := e.devs[0]
	e.waitPublished(d.UDID)
	sessions := e.sessionCount(d.UDID)
	d.SetBlackhole(true)
	waitFor(t, "the dead tunnel noticed", func() bool {
		st, _ := e.device(d.UDID)
		return strings.Contains(st.LastError, "liveness") && strings.Contains(st.LastError, "echo") && e.sessionCount(d.UDID) > sessions
	})
	d.SetBlackhole(false)
	waitFor(t, "a working tunnel again", func() bool {
		st, _ := e.device(d.UDID)
		return st.State == "published"
	})
	e.rsdThrough(d.UDID)
}

// TestDaemonUnreachableDevice: a --device endpoint that does not answer shows its error in the
// status route and the log, and the daemon keeps trying.
func TestDaemonUnreachableDevice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := startEnvWith(t, 0, envOptions{flags: []string{"--device", addr}})
	waitFor(t, "the endpoint's error", func() bool {
		for _, s := range e.status().Sources {
			if s.Name == "address "+addr {
				return s.State == "retrying" && strings.Contains(s.LastError, "unreachable") && strings.Contains(s.LastError, addr)
			}
		}
		return false
	})
	if !strings.Contains(e.logs.String(), addr) {
		t.Fatal("the log does not name the unreachable endpoint")
	}
	// It comes up later: the retry finds it.
	d := sim.NewDevice(profile.Default(), "late", nil)
	r, err := d.ServeRSD(context.Background(), sim.TCPListen("127.0.0.1"), ln.Addr().(*net.TCPAddr).Port, sim.RSDOptions{})
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer r.Close()
	e.waitPublished(d.UDID)
}
