package shim

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testHostUUID is the host identity the tests' shims present to the device.
var testHostUUID = xpc.UUID{0x10, 0x5, 0x4e, 0x11, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1}

// setup runs a simulated device's RSD on loopback (standing in for the tunnel) and a shim to it.
func setup(t *testing.T) (*sim.Device, *sim.RSD, *Shim) {
	t.Helper()
	d := sim.NewDevice(profile.Default(), "", nil)
	r, err := d.ServeRSD(context.Background(), sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	s, err := New(context.Background(), "127.0.0.1", testHostUUID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dialer net.Dialer
	if _, err := s.SetUpstream(ctx, dialer.DialContext, "127.0.0.1", r.Addr().(*net.TCPAddr).Port); err != nil {
		t.Fatal(err)
	}
	return d, r, s
}

func TestHandshakeRewritesOnlyPorts(t *testing.T) {
	d, r, s := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, s.RSDAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h.UUID != d.UUID || h.UDID() != d.UDID {
		t.Fatalf("identity changed: %v %s", h.UUID, h.UDID())
	}
	orig := r.Handshake()
	if len(h.Raw.Entries) != len(orig.Entries) {
		t.Fatal("top-level keys changed")
	}
	for i, e := range h.Raw.Entries {
		if e.Key != orig.Entries[i].Key {
			t.Fatalf("key order changed at %d: %s vs %s", i, e.Key, orig.Entries[i].Key)
		}
	}
	for _, svc := range h.Services {
		local, ok := s.ServicePort(svc.Name)
		devPort, _ := r.Port(svc.Name)
		if !ok || svc.Port != local || svc.Port == devPort {
			t.Fatalf("%s advertised on %d, shim %d, device %d", svc.Name, svc.Port, local, devPort)
		}
	}
	// Properties and UUID reach the client byte for byte.
	props, _ := orig.Dict("Properties")
	pw, _ := xpc.EncodeObject(props)
	pg, _ := xpc.EncodeObject(h.Properties)
	if string(pw) != string(pg) {
		t.Fatal("Properties changed in the relay")
	}
}

func TestServicesRelayed(t *testing.T) {
	d, _, s := setup(t)
	p, _ := s.ServicePort("com.apple.mobile.lockdown.remote.trusted")
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	lockdown.WritePlist(nc, map[string]any{"Label": "shim", "ProtocolVersion": "2", "Request": "RSDCheckin"})
	for _, want := range []string{"RSDCheckin", "StartService"} {
		var reply map[string]any
		if err := lockdown.ReadPlist(nc, &reply); err != nil || reply["Request"] != want {
			t.Fatalf("checkin through shim: %v %v", reply, err)
		}
	}
	lockdown.WritePlist(nc, map[string]any{"Request": "GetValue", "Key": "UniqueDeviceID"})
	var reply map[string]any
	if err := lockdown.ReadPlist(nc, &reply); err != nil || reply["Value"] != d.UDID {
		t.Fatalf("GetValue through shim: %v %v", reply, err)
	}

	// A RemoteXPC service: h2c bytes pass through unchanged.
	p, _ = s.ServicePort("com.apple.coredevice.deviceinfo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rsd.DialClient(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Request(ctx, xpc.NewDict("CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdeviceinfo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Body.(*xpc.Dict).Dict("CoreDevice.output"); !ok {
		t.Fatalf("reply %#v", r.Body)
	}
}

func TestDownUpstreamRefuses(t *testing.T) {
	_, _, s := setup(t)
	s.ClearUpstream()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, _, err := rsd.Dial(ctx, s.RSDAddr().String(), nil); err == nil {
		c.Close()
		t.Fatal("rsd served with the tunnel down")
	}
}
