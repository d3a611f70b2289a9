package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// env is one daemon in-process against a simulated usbmuxd.
type env struct {
	t      testing.TB
	u      *sim.Usbmuxd
	devs   []*sim.Device
	api    string
	done   chan error
	cancel context.CancelFunc
	state  string
	sock   string // the usbmuxd's Unix socket ("" with TCP)

	mu       sync.Mutex
	sessions map[string][]*sim.TunnelSession
	logs     peertest.LogBuffer // the daemon's log
}

// envOptions tune startEnvWith.
type envOptions struct {
	tcp          bool
	mux          sim.UsbmuxdOptions
	flags        []string   // more daemon flags
	beforeDaemon func(*env) // runs after the phones are plugged, before the daemon starts
}

// startEnv plugs n virtual phones into a usbmuxd (unix socket, or TCP when tcp) and runs the
// daemon against it with the userspace backend and shims.
func startEnv(t testing.TB, n int, tcp bool, opts ...sim.UsbmuxdOptions) *env {
	t.Helper()
	return startEnvHook(t, n, tcp, append(opts, sim.UsbmuxdOptions{})[0], nil)
}

// startEnvHook is startEnv with usbmuxd options and a hook run before the daemon starts.
func startEnvHook(t testing.TB, n int, tcp bool, muxOpts sim.UsbmuxdOptions, beforeDaemon func(*env)) *env {
	t.Helper()
	return startEnvWith(t, n, envOptions{tcp: tcp, mux: muxOpts, beforeDaemon: beforeDaemon})
}

// newSimDevice makes the i-th phone of an env; its tunnels are recorded in e.sessions.
func (e *env) newSimDevice(i int) *sim.Device {
	d := sim.NewDevice(profile.Default(), fmt.Sprintf("e2e-%d", i), nil)
	d.SetTunnelOptions(sim.TunnelOptions{OnStart: func(s *sim.TunnelSession) {
		e.mu.Lock()
		e.sessions[d.UDID] = append(e.sessions[d.UDID], s)
		e.mu.Unlock()
	}})
	return d
}

// startEnvWith plugs n virtual phones into a usbmuxd and runs the daemon against it.
func startEnvWith(t testing.TB, n int, o envOptions) *env {
	t.Helper()
	tcp, muxOpts, beforeDaemon := o.tcp, o.mux, o.beforeDaemon
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, cancel: cancel, done: make(chan error, 1), state: filepath.Join(dir, "state"),
		sessions: map[string][]*sim.TunnelSession{}}
	e.u = sim.NewUsbmuxd(ctx, muxOpts)
	var usbmux string
	if tcp {
		a, err := e.u.ListenTCP("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		usbmux = "tcp:" + a.String()
	} else {
		e.sock = filepath.Join(dir, "usbmuxd")
		if _, err := e.u.ListenUnix(e.sock); err != nil {
			t.Fatal(err)
		}
		usbmux = "unix:" + e.sock
	}
	for i := range n {
		d := e.newSimDevice(i)
		e.devs = append(e.devs, d)
		e.u.Plug(d)
	}
	if beforeDaemon != nil {
		beforeDaemon(e)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := newServeFlags(fs)
	if err := fs.Parse(append([]string{"--usbmux", usbmux, "--backend", "userspace", "--state-dir", e.state,
		"--liveness", "200ms"}, o.flags...)); err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.api = ln.Addr().String()
	var sink io.Writer = &e.logs
	if testing.Verbose() {
		sink = io.MultiWriter(&e.logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { e.done <- runDaemon(ctx, f, ln, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop")
		}
		e.u.Close()
	})
	return e
}

func (e *env) get(path string, hdr map[string]string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.api+path, nil)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) tunnels() map[string][]api.TunnelEntry {
	e.t.Helper()
	_, b := e.get("/", nil)
	var out map[string][]api.TunnelEntry
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatalf("GET / %q: %v", b, err)
	}
	return out
}

func (e *env) status() api.Status {
	e.t.Helper()
	_, b := e.get(api.StatusPath, nil)
	var st api.Status
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatalf("status %q: %v", b, err)
	}
	return st
}

func (e *env) device(udid string) (api.DeviceStatus, bool) {
	for _, d := range e.status().Devices {
		if d.UDID == udid {
			return d, true
		}
	}
	return api.DeviceStatus{}, false
}

// waitFor polls cond; the bound is a failure bound, not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) waitPublished(udids ...string) {
	e.t.Helper()
	waitFor(e.t, "publication of "+strings.Join(udids, ","), func() bool {
		tun := e.tunnels()
		for _, u := range udids {
			if len(tun[u]) != 1 {
				return false
			}
		}
		return true
	})
}

// rsdThrough runs an RSD handshake against what GET / advertises for udid.
func (e *env) rsdThrough(udid string) *rsd.Handshake {
	e.t.Helper()
	entry := e.tunnels()[udid][0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, net.JoinHostPort(entry.Address, strconv.Itoa(entry.Port)), nil)
	if err != nil {
		e.t.Fatalf("RSD at the advertised endpoint: %v", err)
	}
	c.Close()
	return h
}

func TestDaemonPublishesReachableRSD(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		t.Run(map[bool]string{false: "unix", true: "tcp"}[tcp], func(t *testing.T) {
			e := startEnv(t, 1, tcp)
			d := e.devs[0]
			e.waitPublished(d.UDID)
			entry := e.tunnels()[d.UDID][0]
			if entry.Interface != "usbmux-"+d.UDID+"-USB" || net.ParseIP(entry.Address) == nil || !net.ParseIP(entry.Address).IsLoopback() {
				t.Fatalf("entry %+v", entry)
			}
			h := e.rsdThrough(d.UDID)
			if h.UDID() != d.UDID || h.UUID != d.UUID {
				t.Fatalf("handshake from %s, uuid %v", h.UDID(), h.UUID)
			}
			// A third-party client reads the services through what GET / advertises.
			out, err := peertest.Node(t, 90*time.Second, nil, "rsd-discover.mjs", d.UDID, entry.Address, strconv.Itoa(entry.Port))
			if err != nil {
				t.Fatal(err)
			}
			var services []struct{ ServiceName, Port string }
			if err := json.Unmarshal(out, &services); err != nil || len(services) != len(h.Services) {
				t.Fatalf("appium discoverServices: %d services (%v), want %d", len(services), err, len(h.Services))
			}
			st, ok := e.device(d.UDID)
			if !ok || st.State != "published" || st.IOSVersion != d.ProductVersion || st.MTU == 0 || st.TunnelAddress == "" {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestDaemonFollowsPlugAndRebuilds(t *testing.T) {
	e := startEnv(t, 1, false)
	d := e.devs[0]
	e.waitPublished(d.UDID)

	// Killing the device's end of the tunnel makes the daemon build a new one.
	e.mu.Lock()
	first := e.sessions[d.UDID][0]
	e.mu.Unlock()
	first.Tunnel.Close()
	waitFor(t, "rebuild", func() bool {
		e.mu.Lock()
		n := len(e.sessions[d.UDID])
		e.mu.Unlock()
		st, _ := e.device(d.UDID)
		return n >= 2 && st.State == "published" && st.TunnelAddress != first.Params.ServerAddress.String()
	})
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatal("rebuilt tunnel does not reach the device")
	}

	// Unplugging removes the entry; plugging back restores it.
	e.u.Unplug(d)
	waitFor(t, "removal", func() bool { _, ok := e.device(d.UDID); return !ok && len(e.tunnels()) == 0 })
	e.u.Plug(d)
	e.waitPublished(d.UDID)
	e.rsdThrough(d.UDID)
}

func TestDaemonBadInputKeepsOthersServed(t *testing.T) {
	good := sim.NewDevice(profile.Default(), "good", nil)
	stall := sim.NewDevice(profile.Default(), "stall", nil)
	badRecord := sim.NewDevice(profile.Default(), "bad-record", nil)
	// A device that stalls mid-handshake: it never answers the CDTunnel request.
	stall.SetTunnelOptions(sim.TunnelOptions{Stall: true})
	e := startEnvHook(t, 0, false, sim.UsbmuxdOptions{}, func(e *env) {
		// A malformed pair record in iosmux's store.
		if err := os.MkdirAll(e.state, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.state, badRecord.UDID+".plist"), []byte("<plist><dict><key>HostID"), 0o600); err != nil {
			t.Fatal(err)
		}
		// A usbmuxd that answers the daemon's first connection, its Listen, with garbage.
		e.u.FailNext(sim.FaultGarbage)
		for _, d := range []*sim.Device{good, stall, badRecord} {
			e.u.Plug(d)
		}
	})
	e.waitPublished(good.UDID)
	defer func() {
		if t.Failed() {
			for _, d := range e.status().Devices {
				t.Logf("%s %s %q", d.UDID, d.State, d.LastError)
			}
		}
	}()
	waitFor(t, "errors in the status route", func() bool {
		s, _ := e.device(stall.UDID)
		b, _ := e.device(badRecord.UDID)
		return strings.Contains(s.LastError, "CDTunnel handshake") && strings.Contains(b.LastError, "pair record")
	})
	if len(e.tunnels()) != 1 {
		t.Fatalf("only the good device may be published: %v", e.tunnels())
	}
	e.rsdThrough(good.UDID)
	// The usbmuxd's garbage shows as the source's last error; the source recovered.
	st := e.status()
	if len(st.Sources) != 1 || st.Sources[0].LastError == "" || st.Sources[0].State != "running" {
		t.Fatalf("sources %+v", st.Sources)
	}
}

func TestDaemonAPIRefusesForeignRequests(t *testing.T) {
	e := startEnv(t, 1, false)
	e.waitPublished(e.devs[0].UDID)
	for _, hdr := range []map[string]string{{"Host": "attacker.example"}, {"Origin": "http://attacker.example"}} {
		for _, path := range []string{"/shutdown", "/clear_tunnels", "/cancel?udid=" + e.devs[0].UDID} {
			if code, _ := e.get(path, hdr); code != http.StatusForbidden {
				t.Fatalf("%v %s: %d", hdr, path, code)
			}
		}
	}
	select {
	case err := <-e.done:
		t.Fatalf("daemon stopped: %v", err)
	default:
	}
	if len(e.tunnels()) != 1 {
		t.Fatal("a refused request changed the tunnels")
	}
	// The real thing: /shutdown stops the daemon.
	if code, _ := e.get("/shutdown", nil); code != 200 {
		t.Fatalf("shutdown %d", code)
	}
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatal(err)
		}
		e.done <- nil // for Cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("daemon still running after /shutdown")
	}
}

func TestManyDevicesBehindOneUsbmuxd(t *testing.T) {
	e := startEnv(t, 4, true)
	var udids []string
	for _, d := range e.devs {
		udids = append(udids, d.UDID)
	}
	e.waitPublished(udids...)
	for _, u := range udids {
		if h := e.rsdThrough(u); h.UDID() != u {
			t.Fatalf("tunnel of %s reaches %s", u, h.UDID())
		}
	}
}

// TestDaemonHandGivenAddress: a device whose RSD endpoint is given by hand is published behind a
// shim, with its source and backend in the status route.
func TestDaemonHandGivenAddress(t *testing.T) {
	d := sim.NewDevice(profile.Default(), "by-hand", nil)
	r, err := d.ServeRSD(context.Background(), sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := newServeFlags(fs)
	if err := fs.Parse([]string{"--no-usbmux", "--device", r.Addr().String(), "--backend", "userspace",
		"--state-dir", t.TempDir(), "--liveness", "200ms"}); err != nil {
		t.Fatal(err)
	}
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, f, ln, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()
	e := &env{t: t, api: ln.Addr().String()}
	e.waitPublished(d.UDID)
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatalf("handshake from %s", h.UDID())
	}
	st, _ := e.device(d.UDID)
	if st.Backend != "direct" || st.Source != "address "+r.Addr().String() {
		t.Fatalf("status %+v", st)
	}
}

// TestDaemonDashlessSerial: when usbmuxd reports the UDID without its dash (Linux), GET / is
// keyed by lockdown's UniqueDeviceID, and the API finds the device by either form.
func TestDaemonDashlessSerial(t *testing.T) {
	e := startEnv(t, 1, false, sim.UsbmuxdOptions{DashlessSerial: true})
	d := e.devs[0]
	e.waitPublished(d.UDID)
	dashless := strings.ReplaceAll(d.UDID, "-", "")
	if st, _ := e.device(d.UDID); !strings.Contains(st.Source, "usbmuxd") {
		t.Fatalf("status %+v", st)
	}
	if code, _ := e.get("/cancel?udid="+dashless, nil); code != 200 {
		t.Fatalf("cancel %d", code)
	}
	waitFor(t, "cancel by the dashless UDID", func() bool { return len(e.tunnels()) == 0 })
	if code, body := e.get("/start-tunnel?udid="+dashless, nil); code != 200 {
		t.Fatalf("start-tunnel %d %s", code, body)
	}
	e.waitPublished(d.UDID)
}

// TestDaemonCoalesce: with --coalesce the CoreDeviceProxy tunnel packs packets into shared
// records (held into one write per batch) and the device is still published and answers RSD
// through the shim.
func TestDaemonCoalesce(t *testing.T) {
	e := startEnvWith(t, 1, envOptions{flags: []string{"--coalesce"}})
	d := e.devs[0]
	e.waitPublished(d.UDID)
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatalf("handshake from %s", h.UDID())
	}
}
