package sim

import (
	"context"
	"errors"
	"testing"

	"github.com/iosmux/iosmux/lockdown"
)

// TestUsbmuxdListsUSBAndNetwork: a device plugged both ways is listed twice under one UDID,
// each entry reaches lockdownd, and unplugging one leaves the other.
func TestUsbmuxdListsUSBAndNetwork(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	d := devs[0]
	netID := u.PlugVia(d, ConnectionTypeNetwork)
	if again := u.PlugVia(d, ConnectionTypeNetwork); again != netID {
		t.Fatal("plugging the same way twice made a new entry")
	}
	m := newMux(t, path)
	ctx := testCtx(t)
	list, err := m.ListDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]uint32{}
	for _, e := range list {
		if e.UDID != d.UDID {
			t.Fatalf("entry %+v", e)
		}
		kinds[e.ConnectionType] = e.ID
	}
	if len(list) != 2 || kinds["USB"] == 0 || kinds["Network"] != netID {
		t.Fatalf("entries %+v", list)
	}
	c, err := m.Lockdown(ctx, netID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.QueryType(ctx); err != nil {
		t.Fatal(err)
	}
	if !u.UnplugVia(d, ConnectionTypeNetwork) {
		t.Fatal("UnplugVia Network: not attached")
	}
	if _, err := c.QueryType(ctx); err == nil {
		t.Fatal("a connection over the Network entry survived its unplug")
	}
	c.Close()
	if list, _ := m.ListDevices(ctx); len(list) != 1 || list[0].ConnectionType != "USB" {
		t.Fatalf("after unplugging Network: %+v", list)
	}
}

// TestForgetHosts: after ForgetHosts a paired host's session fails with InvalidHostID.
func TestForgetHosts(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 1)
	m := newMux(t, path)
	rec, dev := pairDevice(t, m, devs[0])
	if n := devs[0].ForgetHosts(); n != 1 || len(devs[0].PairedHostIDs()) != 0 {
		t.Fatalf("forgot %d hosts, %v left", n, devs[0].PairedHostIDs())
	}
	c, err := m.Lockdown(testCtx(t), dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartSession(testCtx(t), rec); !errors.Is(err, lockdown.ErrInvalidHostID) {
		t.Fatalf("session after the reset: %v", err)
	}
}

// TestListenUnixRefusesLiveSocket: the simulator never takes over a socket that answers.
func TestListenUnixRefusesLiveSocket(t *testing.T) {
	_, _, path := startUsbmuxd(t, 0)
	other := NewUsbmuxd(context.Background(), UsbmuxdOptions{})
	defer other.Close()
	if _, err := other.ListenUnix(path); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("ListenUnix on a live socket: %v", err)
	}
	if _, err := newMux(t, path).ListDevices(testCtx(t)); err != nil {
		t.Fatalf("the first usbmuxd lost its socket: %v", err)
	}
}
