package sim

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/sim/profile"
)

// appiumDiscover runs appium-ios-remotexpc's discoverServices against host:port and checks
// that it lists every service of r with its port.
func appiumDiscover(t *testing.T, d *Device, r *RSD, prefix []string, host string, port int) {
	t.Helper()
	out, err := peertest.Node(t, 60*time.Second, prefix, "rsd-discover.mjs", d.UDID, host, strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	var services []struct {
		ServiceName string `json:"serviceName"`
		Port        string `json:"port"`
	}
	if err := json.Unmarshal(out, &services); err != nil {
		t.Fatalf("discoverServices output %q: %v", out, err)
	}
	if len(services) != len(d.Services()) {
		t.Fatalf("appium listed %d services, want %d", len(services), len(d.Services()))
	}
	for _, s := range services {
		want, ok := r.Port(s.ServiceName)
		if !ok || s.Port != strconv.Itoa(want) {
			t.Fatalf("appium: %s on port %s, simulator has %d", s.ServiceName, s.Port, want)
		}
	}
}

func TestAppiumDiscoverServicesLoopback(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			d := NewDevice(profile.Default(), "", nil)
			r, err := d.ServeRSD(context.Background(), TCPListen(host), 0, RSDOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			appiumDiscover(t, d, r, nil, host, r.Addr().(*net.TCPAddr).Port)
		})
	}
}

// TestAppiumDiscoverServicesLinkLocal serves RSD on an IPv6 link-local address of a veth pair
// and runs the client inside the namespace at the other end, as on a USB NCM link.
func TestAppiumDiscoverServicesLinkLocal(t *testing.T) {
	l := peertest.NetNSLink(t)
	d := NewDevice(profile.Default(), "linklocal", nil)
	r, err := d.ServeRSD(context.Background(), TCPListen(l.HostIP+"%"+l.HostIf), 0, RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	appiumDiscover(t, d, r, []string{"ip", "netns", "exec", l.NS}, l.HostIP+"%"+l.PeerIf, r.Addr().(*net.TCPAddr).Port)
}

// TestAppiumCoreDeviceInfo: appium-ios-remotexpc's CoreDeviceInfoService calls the simulated
// com.apple.coredevice.deviceinfo end to end (request envelope, reply on stream 3, output).
func TestAppiumCoreDeviceInfo(t *testing.T) {
	d := NewDevice(profile.Default(), "", nil)
	r, err := d.ServeRSD(context.Background(), TCPListen("127.0.0.1"), 0, RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	port, _ := r.Port("com.apple.coredevice.deviceinfo")
	out, err := peertest.Node(t, 60*time.Second, nil, "coredevice-info.mjs", d.UDID, "127.0.0.1", strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		DeviceInfo map[string]any `json:"deviceInfo"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if got.DeviceInfo["UniqueDeviceID"] != d.UDID || got.DeviceInfo["ProductType"] != d.ProductType {
		t.Fatalf("deviceInfo %v", got.DeviceInfo)
	}
}
