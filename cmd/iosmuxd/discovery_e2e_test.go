package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/daemon"
	"github.com/iosmux/iosmux/internal/peertest"
)

// startSimulateIn runs `iosmuxd simulate args…` inside the network namespace ns until the test
// ends and returns the "NAME ADDRESS" lines it prints once every name in want has appeared.
func startSimulateIn(t testing.TB, ns string, want []string, args ...string) map[string]string {
	t.Helper()
	return runSimulate(t, peertest.NetNSCommand(ns, os.Args[0], append([]string{"simulate"}, args...)...), want, args)
}

// runDaemonLogged runs the daemon in-process with args, logging at debug into the returned
// buffer.
func runDaemonLogged(t testing.TB, args ...string) (*env, func(), *peertest.LogBuffer) {
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
	logs := &peertest.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, f, ln, log) }()
	var once bool
	stop := func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("daemon %v log:\n%s", args, logs.String())
		}
	})
	return &env{t: t, api: ln.Addr().String()}, stop, logs
}

// portOfAddr is the port of HOST:PORT.
func portOfAddr(t testing.TB, a string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatalf("address %q: %v", a, err)
	}
	return p
}

// TestDiscoveryE2E: a simulated phone in another network namespace, joined by a veth, is
// found by its _remoted._tcp advert, paired over its untrusted RSD (Trust accepted), tunnelled
// and published; its _remotepairing._tcp advert then matches the record just written and
// becomes a second path of the same device (USB network carrying). Restarted with Wi-Fi only
// and pairing off, the daemon pair-verifies over the RPPairing port with the stored record and
// publishes; a second advert of the phone with a wrong auth tag is ignored with a debug log.
func TestDiscoveryE2E(t *testing.T) {
	l := peertest.NetNSLink(t)
	ep := startSimulateIn(t, l.NS, []string{"udid", "rsd", "remotepairing", "mdns"},
		"--rsd", "[::]:0", "--untrusted", "--remotepairing", "[::]:0", "--mdns", l.PeerIf)
	udid := ep["udid"]
	state := t.TempDir()
	e, stop, _ := runDaemonLogged(t, "--no-usbmux", "--mdns-iface", l.HostIf, "--backend", "userspace",
		"--state-dir", state, "--liveness", "500ms")
	e.waitPublished(udid)
	if h := e.rsdThrough(udid); h.UDID() != udid {
		t.Fatalf("tunnel reaches %s", h.UDID())
	}
	if _, err := os.Stat(state + "/remote_" + udid + ".plist"); err != nil {
		t.Fatalf("no RemotePairing record after pairing: %v", err)
	}
	waitFor(t, "the Wi-Fi path beside the USB network one", func() bool {
		st, ok := e.device(udid)
		return ok && len(st.Paths) == 2
	})
	st := e.status()
	if len(st.Devices) != 1 {
		t.Fatalf("%d devices, want one with two paths: %+v", len(st.Devices), st.Devices)
	}
	paths := map[string]api.PathStatus{}
	for _, p := range st.Devices[0].Paths {
		paths[p.Source] = p
	}
	usb, wifi := paths[daemon.SourceUSBNetwork], paths[daemon.SourceWiFi]
	if !usb.Carrying || wifi.Carrying {
		t.Fatalf("USB network path should carry the tunnel: %+v", st.Devices[0].Paths)
	}
	if usb.Address != "[fe80::2%"+l.HostIf+"]:"+portOfAddr(t, ep["rsd"]) {
		t.Fatalf("USB network path at %q, want the link-local RSD %s on %s", usb.Address, ep["rsd"], l.HostIf)
	}
	if portOfAddr(t, wifi.Address) != portOfAddr(t, ep["remotepairing"]) {
		t.Fatalf("Wi-Fi path at %q, want the RPPairing port %s", wifi.Address, ep["remotepairing"])
	}
	stop()

	bad := startSimulateIn(t, l.NS, []string{"remotepairing", "mdns"},
		"--remotepairing", "[::]:0", "--mdns", l.PeerIf, "--mdns-auth-tag", "AAAAAAAA")
	e, _, logs := runDaemonLogged(t, "--no-usbmux", "--no-usb-network", "--no-pair", "--mdns-iface", l.HostIf,
		"--backend", "userspace", "--state-dir", state, "--liveness", "500ms")
	e.waitPublished(udid)
	if h := e.rsdThrough(udid); h.UDID() != udid {
		t.Fatalf("Wi-Fi tunnel reaches %s", h.UDID())
	}
	d, _ := e.device(udid)
	if len(d.Paths) != 1 || d.Paths[0].Source != daemon.SourceWiFi || !d.Paths[0].Carrying ||
		portOfAddr(t, d.Paths[0].Address) != portOfAddr(t, ep["remotepairing"]) {
		t.Fatalf("paths %+v, want only the Wi-Fi path to the right advert", d.Paths)
	}
	badPort := portOfAddr(t, bad["remotepairing"])
	waitFor(t, "the wrong auth tag in the debug log", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "auth tag matches no RemotePairing record") && strings.Contains(line, "port="+badPort) {
				return true
			}
		}
		return false
	})
	if strings.Contains(logs.String(), "remotepairing=[fe80::2%"+l.HostIf+"]:"+badPort) {
		t.Fatal("the advert with the wrong auth tag became a path")
	}
	if os.Getenv("IOSMUX_SHOW_LOG") != "" {
		t.Log(logs.String())
	}
}

// TestDiscoveryUsbmuxAndWiFi: the same simulated phone behind usbmuxd (USB) and advertised by
// _remotepairing._tcp (its RemotePairing record from `iosmuxd pair`) is one device with two
// paths, and USB carries the tunnel.
func TestDiscoveryUsbmuxAndWiFi(t *testing.T) {
	l := peertest.NetNSLink(t)
	sock := t.TempDir() + "/usbmuxd"
	ep := startSimulateIn(t, l.NS, []string{"udid", "remotepairing", "mdns", "usbmuxd"},
		"--usbmuxd", "unix:"+sock, "--remotepairing", "[::]:0", "--mdns", l.PeerIf)
	udid := ep["udid"]
	state := t.TempDir()
	rp := "[fe80::2%" + l.HostIf + "]:" + portOfAddr(t, ep["remotepairing"])
	var out, errb strings.Builder
	if code := run([]string{"pair", "--state-dir", state, "--remotepairing", rp}, &out, &errb); code != 0 {
		t.Fatalf("pair --remotepairing %s: %d %s", rp, code, errb.String())
	}
	e, _, _ := runDaemonLogged(t, "--usbmux", "unix:"+sock, "--no-usb-network", "--mdns-iface", l.HostIf,
		"--backend", "userspace", "--state-dir", state, "--liveness", "500ms")
	e.waitPublished(udid)
	waitFor(t, "the Wi-Fi path beside usbmuxd's", func() bool {
		d, ok := e.device(udid)
		return ok && len(d.Paths) == 2
	})
	st := e.status()
	if len(st.Devices) != 1 {
		t.Fatalf("%d devices, want one with two paths: %+v", len(st.Devices), st.Devices)
	}
	for _, p := range st.Devices[0].Paths {
		if (p.Source == daemon.SourceWiFi) == p.Carrying || p.Source != daemon.SourceWiFi && p.ConnectionType != "USB" {
			t.Fatalf("paths %+v: want usbmuxd's USB path carrying, the Wi-Fi one waiting", st.Devices[0].Paths)
		}
	}
	if h := e.rsdThrough(udid); h.UDID() != udid {
		t.Fatalf("tunnel reaches %s", h.UDID())
	}
}

// TestDiscoveryManualPairing: a simulated Apple TV waiting for a PIN advertises
// _remotepairing-manual-pairing._tcp; the daemon lists it as pairable (no device yet);
// `iosmuxd pair --remotepairing <its listed address> --pin` pairs it; its _remotepairing._tcp
// advert then matches the new record and the daemon pair-verifies and publishes it.
func TestDiscoveryManualPairing(t *testing.T) {
	l := peertest.NetNSLink(t)
	ep := startSimulateIn(t, l.NS, []string{"udid", "remotepairing", "mdns"},
		"--remotepairing", "[::]:0", "--pin", "123456", "--mdns", l.PeerIf)
	udid := ep["udid"]
	state := t.TempDir()
	e, _, _ := runDaemonLogged(t, "--no-usbmux", "--no-usb-network", "--mdns-iface", l.HostIf,
		"--backend", "userspace", "--state-dir", state, "--liveness", "500ms")
	var p api.PairableStatus
	waitFor(t, "the Apple TV in the pairable list", func() bool {
		st := e.status()
		if len(st.Pairable) == 1 {
			p = st.Pairable[0]
		}
		return len(st.Pairable) == 1
	})
	if portOfAddr(t, p.Address) != portOfAddr(t, ep["remotepairing"]) || p.Interface != l.HostIf || p.Name == "" || p.Identifier == "" {
		t.Fatalf("pairable %+v", p)
	}
	if n := len(e.status().Devices); n != 0 {
		t.Fatalf("%d devices before pairing", n)
	}
	var out, errb strings.Builder
	if code := run([]string{"pair", "--state-dir", state, "--remotepairing", p.Address, "--pin", "123456"}, &out, &errb); code != 0 {
		t.Fatalf("pair --pin: %d %s", code, errb.String())
	}
	e.waitPublished(udid)
	d, _ := e.device(udid)
	if len(d.Paths) != 1 || d.Paths[0].Source != daemon.SourceWiFi {
		t.Fatalf("paths %+v", d.Paths)
	}
}

// TestDiscoveryWiFiNeverPairsOnItsOwn: a phone advertised over Wi-Fi whose tag matches a
// record but which refuses that record (here: another simulator with the phone's identity that
// never paired, as an impostor replaying the advert would) is not paired again on its own: it
// waits in 'needs pairing' and the record is left as it was.
func TestDiscoveryWiFiNeverPairsOnItsOwn(t *testing.T) {
	l := peertest.NetNSLink(t)
	first := startSimulateIn(t, l.NS, []string{"udid", "remotepairing"}, "--remotepairing", "[::]:0")
	state := t.TempDir()
	var out, errb strings.Builder
	rp := "[fe80::2%" + l.HostIf + "]:" + portOfAddr(t, first["remotepairing"])
	if code := run([]string{"pair", "--state-dir", state, "--remotepairing", rp}, &out, &errb); code != 0 {
		t.Fatalf("pair: %d %s", code, errb.String())
	}
	rec := state + "/remote_" + first["udid"] + ".plist"
	before, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	startSimulateIn(t, l.NS, []string{"udid", "remotepairing", "mdns"}, "--remotepairing", "[::]:0", "--mdns", l.PeerIf)
	e, _, _ := runDaemonLogged(t, "--no-usbmux", "--no-usb-network", "--mdns-iface", l.HostIf,
		"--backend", "userspace", "--state-dir", state)
	waitFor(t, "the refused record to leave the device in 'needs pairing'", func() bool {
		d, ok := e.device(first["udid"])
		return ok && d.State == daemon.StateNeedsPairing
	})
	after, err := os.ReadFile(rec)
	if err != nil || string(after) != string(before) {
		t.Fatalf("the record changed (%v): the daemon paired over Wi-Fi on its own", err)
	}
}
