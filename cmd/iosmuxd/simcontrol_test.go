package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// TestSimulatorControl: the control endpoint forgets pairings, plugs and unplugs a path, and
// refuses what it does not know.
func TestSimulatorControl(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := sim.NewUsbmuxd(ctx, sim.UsbmuxdOptions{})
	defer u.Close()
	sock := filepath.Join(t.TempDir(), "usbmuxd")
	if _, err := u.ListenUnix(sock); err != nil {
		t.Fatal(err)
	}
	d := sim.NewDevice(profile.Default(), "control", nil)
	u.Plug(d)
	addr, err := serveControl(ctx, "127.0.0.1:0", u, []*sim.Device{d}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+addr.String()+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	m, _ := lockdown.NewMux("unix:" + sock)
	entries := func() int {
		l, err := m.ListDevices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	var out, errb strings.Builder
	if code := run([]string{"pair", "--usbmux", "unix:" + sock, "--state-dir", t.TempDir()}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	if code, _ := post("/forget-pairings?udid=" + d.UDID); code != 200 || len(d.PairedHostIDs()) != 0 {
		t.Fatalf("forget-pairings: %d, hosts %v", code, d.PairedHostIDs())
	}
	if code, _ := post("/plug?via=Network"); code != 200 || entries() != 2 {
		t.Fatalf("plug Network: %d, %d entries", code, entries())
	}
	if code, _ := post("/unplug?via=USB"); code != 200 || entries() != 1 {
		t.Fatalf("unplug USB: %d, %d entries", code, entries())
	}
	if code, _ := post("/blackhole?on=1"); code != 200 {
		t.Fatal("blackhole")
	}
	for path, want := range map[string]int{"/plug?via=Bluetooth": 400, "/unplug?udid=nope&via=USB": 404} {
		if code, _ := post(path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
	resp, err := http.Get("http://" + addr.String() + "/forget-pairings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}
