package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"howett.net/plist"

	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
)

// untrustedDevice serves a fresh simulated device's untrusted RSD on loopback and returns the
// device and its path.
func untrustedDevice(t testing.TB, name string) (*sim.Device, Device) {
	t.Helper()
	d := sim.NewDevice(profile.Default(), name, nil)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := d.ServeRSD(ctx, sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{Untrusted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); cancel() })
	return d, Device{UDID: d.UDID, RSDAddr: r.Addr().String(), ConnectionType: "USB", Source: "test"}
}

func remotePairing(t testing.TB, dir string, pair bool) *RemotePairing {
	t.Helper()
	st, err := pairrecord.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &RemotePairing{Store: st, Pair: pair, HostName: "iosmux-test-host", Backend: tunnel.Userspace{}}
}

// open opens dev with r and records the stages it went through.
func open(t *testing.T, r *RemotePairing, dev Device) (Tunnel, Info, []string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stages []string
	tun, info, err := r.Open(ctx, dev, func(s string) { stages = append(stages, s) })
	if err == nil {
		t.Cleanup(func() { tun.Close() })
	}
	return tun, info, stages, err
}

func prompted(stages []string) bool {
	for _, s := range stages {
		if strings.HasPrefix(s, StagePairing) {
			return true
		}
	}
	return false
}

// TestRemotePairingNeverAnswered: a Trust prompt nobody answers ends at PairTimeout with an
// error that says so, and no record is written.
func TestRemotePairingNeverAnswered(t *testing.T) {
	d, dev := untrustedDevice(t, "rp-never")
	d.SetTrust(sim.TrustNever)
	dir := t.TempDir()
	r := remotePairing(t, dir, true)
	r.PairTimeout = 300 * time.Millisecond
	_, _, stages, err := open(t, r, dev)
	if err == nil || !strings.Contains(err.Error(), "nobody answered the Trust prompt") || !prompted(stages) {
		t.Fatalf("err %v stages %v", err, stages)
	}
	if _, err := r.Store.LoadRemote(d.UDID); !errors.Is(err, pairrecord.ErrNoRemoteRecord) {
		t.Fatalf("record after an unanswered prompt: %v", err)
	}
}

// TestRemotePairingNoPair: with pairing off, a device without a record waits for pairing and
// is never shown a prompt.
func TestRemotePairingNoPair(t *testing.T) {
	d, dev := untrustedDevice(t, "rp-nopair")
	_, _, stages, err := open(t, remotePairing(t, t.TempDir(), false), dev)
	if !errors.Is(err, ErrNeedsPairing) || prompted(stages) || len(d.RemotePairingHosts()) != 0 {
		t.Fatalf("err %v stages %v hosts %v", err, stages, d.RemotePairingHosts())
	}
}

// TestRemotePairingReset: a device that forgot the host (erased, reset) refuses pair-verify;
// with pairing on the daemon pairs again and replaces the record, with it off it waits.
func TestRemotePairingReset(t *testing.T) {
	d, dev := untrustedDevice(t, "rp-reset")
	dir := t.TempDir()
	r := remotePairing(t, dir, true)
	tun, _, _, err := open(t, r, dev)
	if err != nil {
		t.Fatal(err)
	}
	tun.Close()
	old, err := r.Store.LoadRemote(d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	if n := d.ForgetHosts(); n != 1 {
		t.Fatalf("device forgot %d hosts", n)
	}
	if _, _, stages, err := open(t, remotePairing(t, dir, false), dev); !errors.Is(err, ErrNeedsPairing) || prompted(stages) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("pairing off: err %v stages %v", err, stages)
	}
	_, info, stages, err := open(t, r, dev)
	if err != nil || !prompted(stages) || info.UDID != d.UDID {
		t.Fatalf("re-pair: err %v stages %v info %+v", err, stages, info)
	}
	rec, err := r.Store.LoadRemote(d.UDID)
	if err != nil || string(rec.PrivateKey) == string(old.PrivateKey) || len(d.RemotePairingHosts()) != 1 {
		t.Fatalf("record after re-pairing: %v %v, hosts %v", rec, err, d.RemotePairingHosts())
	}
}

// TestRemotePairingImportPymobiledevice3: a record in pymobiledevice3's layout
// (~/.pymobiledevice3/remote_<UDID>.plist: keys only, the identifier derived from the hostname)
// pair-verifies with no prompt and is copied into iosmux's store.
func TestRemotePairingImportPymobiledevice3(t *testing.T) {
	d, dev := untrustedDevice(t, "rp-pmd3")
	first := remotePairing(t, t.TempDir(), true)
	tun, _, _, err := open(t, first, dev)
	if err != nil {
		t.Fatal(err)
	}
	tun.Close()
	rec, err := first.Store.LoadRemote(d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SUDO_USER", "")
	pmd3 := map[string]any{"private_key": rec.PrivateKey, "public_key": rec.PublicKey, "remote_unlock_host_key": ""}
	data, err := plist.MarshalIndent(pmd3, plist.XMLFormat, "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".pymobiledevice3"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".pymobiledevice3", "remote_"+d.UDID+".plist"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	d.SetTrust(sim.TrustDeny) // a prompt would fail
	second := remotePairing(t, t.TempDir(), false)
	second.ImportPymobiledevice3 = true
	if _, _, stages, err := open(t, second, dev); err != nil || prompted(stages) {
		t.Fatalf("with pymobiledevice3's record: err %v stages %v", err, stages)
	}
	if got, err := second.Store.LoadRemote(d.UDID); err != nil || got.Identifier != rec.Identifier {
		t.Fatalf("imported copy %v %v", got, err)
	}
}

// TestRemotePairingTrustedRSDNotPaired: an RSD that is already trusted (another tool's tunnel)
// is not taken for an untrusted one, even though it lists the tunnel service too.
func TestRemotePairingTrustedRSDNotPaired(t *testing.T) {
	d := sim.NewDevice(profile.Default(), "rp-trusted", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs, err := d.ServeRSD(ctx, sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	dev := Device{UDID: d.UDID, RSDAddr: rs.Addr().String()}
	if _, _, _, err := open(t, remotePairing(t, t.TempDir(), true), dev); !errors.Is(err, ErrNotUntrusted) {
		t.Fatalf("trusted RSD: %v", err)
	}
	tun, _, err := Openers(nil, remotePairing(t, t.TempDir(), true).Open)(ctx, dev, func(string) {})
	if err != nil || tun.(interface{ Backend() string }).Backend() != "direct" {
		t.Fatalf("Openers: %v", err)
	}
	tun.Close()
}

// TestRemotePairingNetworkPort: a device reached by its RPPairing port (Wi-Fi) is paired there
// when it has no record, then pair-verified and tunnelled; its tunnel carries the device's RSD.
func TestRemotePairingNetworkPort(t *testing.T) {
	d := sim.NewDevice(profile.Default(), "rp-wifi", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go d.ServeRemotePairing(ctx, ln)
	dev := Device{UDID: d.UDID, PairingAddr: ln.Addr().String(), ConnectionType: "Network"}
	r := remotePairing(t, t.TempDir(), true)
	tun, info, stages, err := open(t, r, dev)
	if err != nil || !prompted(stages) || info.UDID != d.UDID {
		t.Fatalf("first open: err %v stages %v info %+v", err, stages, info)
	}
	tun.Close()
	d.SetTrust(sim.TrustDeny)
	tun, _, stages, err = open(t, r, dev)
	if err != nil || prompted(stages) {
		t.Fatalf("second open: err %v stages %v", err, stages)
	}
	if err := checkRSD(ctx, tun); err != nil {
		t.Fatal(err)
	}
}
