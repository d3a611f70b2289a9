package discovery

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// fakeNet makes a sysfs-like tree: class/net/NAME → devices/usb1/1-1/1-1:1.N/net/NAME.
func fakeNet(t *testing.T, root, name, ifString, serial string, n int) {
	t.Helper()
	usbDev := filepath.Join(root, "devices", "usb1", "1-"+name)
	usbIf := filepath.Join(usbDev, "1-"+name+":1."+string(rune('0'+n)))
	dev := filepath.Join(usbIf, "net", name)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(usbIf, "interface"), []byte(ifString+"\n"), 0o644)
	if serial != "" {
		os.WriteFile(filepath.Join(usbDev, "serial"), []byte(serial+"\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(root, "class", "net"), 0o755)
	if err := os.Symlink(dev, filepath.Join(root, "class", "net", name)); err != nil {
		t.Fatal(err)
	}
}

// TestUSBNetworkInterfaces: only netdevs of the phone's NCM function count, named by the
// UDID in the USB serial (dash restored); a plain directory, another USB NIC and a function
// without serial do not.
func TestUSBNetworkInterfaces(t *testing.T) {
	root := t.TempDir()
	fakeNet(t, root, "enxphone", "NCM Control", "00008030001A2B3C4D5E6F70", 5)
	fakeNet(t, root, "enxold", "AppleUSBEthernet", "0123456789abcdef0123456789abcdef01234567", 2)
	fakeNet(t, root, "enxdongle", "CDC Ethernet Control Model (ECM)", "AB12", 0)
	fakeNet(t, root, "enxnoserial", "NCM Control", "", 5)
	os.Mkdir(filepath.Join(root, "class", "net", "notalink"), 0o755)
	got, err := USBNetworkInterfaces(filepath.Join(root, "class", "net"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"enxphone": "00008030-001A2B3C4D5E6F70", "enxold": "0123456789abcdef0123456789abcdef01234567"}
	if len(got) != len(want) {
		t.Fatalf("found %+v", got)
	}
	for _, u := range got {
		if want[u.Name] != u.UDID {
			t.Fatalf("found %+v, want %v", got, want)
		}
	}
}

// TestBringUp: a down interface is brought up (inside a namespace, on a dummy link).
func TestBringUp(t *testing.T) {
	l := peertest.NetNSLink(t)
	if out, err := exec.Command("ip", "-n", l.NS, "link", "add", "dummy0", "type", "dummy").CombinedOutput(); err != nil {
		t.Skipf("no dummy links: %v %s", err, out)
	}
	var up bool
	err := peertest.InNetNS(l.NS, func() error {
		if err := BringUp("dummy0"); err != nil {
			return err
		}
		ifs, err := Named([]string{"dummy0"})()
		up = len(ifs) == 1
		return err
	})
	if err != nil || !up {
		t.Fatalf("BringUp: %v, up=%v", err, up)
	}
	if err := peertest.InNetNS(l.NS, func() error { return BringUp("nosuch0") }); err == nil {
		t.Fatal("BringUp of a missing interface succeeded")
	}
}

// TestWatchLinks: a link added in the namespace is signalled; the watcher stops with its
// context.
func TestWatchLinks(t *testing.T) {
	l := peertest.NetNSLink(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ch <-chan struct{}
	if err := peertest.InNetNS(l.NS, func() (err error) { ch, err = WatchLinks(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	select { // drain anything from the link's own setup
	case <-ch:
	default:
	}
	if out, err := exec.Command("ip", "-n", l.NS, "link", "add", "watch0", "type", "dummy").CombinedOutput(); err != nil {
		t.Skipf("no dummy links: %v %s", err, out)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no link event for a new link")
	}
}
