package sim

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRSD runs a simulated device's RSD endpoint on loopback for the test's lifetime.
func startRSD(t *testing.T, seed string, opts RSDOptions) (*Device, *RSD) {
	t.Helper()
	d := NewDevice(profile.Default(), seed, nil)
	r, err := d.ServeRSD(context.Background(), TCPListen("127.0.0.1"), 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return d, r
}

func dialRSD(t *testing.T, r *RSD) (*rsd.Conn, *rsd.Handshake) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, r.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, h
}

func TestHandshakeMatchesProfile(t *testing.T) {
	d, r := startRSD(t, "", RSDOptions{})
	_, h := dialRSD(t, r)
	if h.UDID() != d.UDID || h.UUID != d.UUID || h.UUID == (xpc.UUID{}) {
		t.Fatalf("identity: udid %q uuid %v", h.UDID(), h.UUID)
	}
	if len(h.Services) != len(d.Services()) {
		t.Fatalf("%d services, want %d", len(h.Services), len(d.Services()))
	}
	seen := map[int]bool{}
	for _, s := range h.Services {
		want, _ := r.Port(s.Name)
		if s.Port != want || seen[s.Port] || s.Entitlement == "" {
			t.Fatalf("service %+v (listening on %d)", s, want)
		}
		seen[s.Port] = true
		if p, _ := s.Entry.Get("Port"); p != strconv.Itoa(s.Port) {
			t.Fatalf("Port must stay a string, got %#v", p)
		}
	}
	if pt, _ := h.Properties.String("ProductType"); pt != d.ProductType {
		t.Fatalf("ProductType %q", pt)
	}
	// A second device gets a different identity, the same device the same one.
	d2 := NewDevice(profile.Default(), "second", nil)
	if d2.UDID == d.UDID || d2.UUID == d.UUID || NewDevice(profile.Default(), "", nil).UUID != d.UUID {
		t.Fatal("device identities are not distinct and stable")
	}
}

func TestPortsAreFreshPerSession(t *testing.T) {
	_, a := startRSD(t, "", RSDOptions{})
	_, b := startRSD(t, "", RSDOptions{})
	pa, _ := a.Port("com.apple.mobile.lockdown.remote.trusted")
	pb, _ := b.Port("com.apple.mobile.lockdown.remote.trusted")
	if pa == pb {
		t.Fatal("two sessions share a service port")
	}
}

func dialService(t *testing.T, r *RSD, name string) net.Conn {
	t.Helper()
	p, ok := r.Port(name)
	if !ok {
		t.Fatalf("no %s", name)
	}
	nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return nc
}

func call(t *testing.T, nc net.Conn, req map[string]any) map[string]any {
	t.Helper()
	if err := lockdown.WritePlist(nc, req); err != nil {
		t.Fatal(err)
	}
	var reply map[string]any
	if err := lockdown.ReadPlist(nc, &reply); err != nil {
		t.Fatal(err)
	}
	return reply
}

func TestRemoteLockdown(t *testing.T) {
	d, r := startRSD(t, "", RSDOptions{})
	nc := dialService(t, r, "com.apple.mobile.lockdown.remote.trusted")
	first := call(t, nc, map[string]any{"Label": "test", "ProtocolVersion": "2", "Request": "RSDCheckin"})
	if first["Request"] != "RSDCheckin" || first["Label"] != "test" {
		t.Fatalf("checkin reply 1 %v", first)
	}
	var second map[string]any
	if err := lockdown.ReadPlist(nc, &second); err != nil || second["Request"] != "StartService" {
		t.Fatalf("checkin reply 2 %v %v", second, err)
	}
	if q := call(t, nc, map[string]any{"Request": "QueryType"}); q["Type"] != "com.apple.mobile.lockdown" {
		t.Fatalf("QueryType %v", q)
	}
	all := call(t, nc, map[string]any{"Request": "GetValue"})
	vals, ok := all["Value"].(map[string]any)
	if !ok || len(vals) != len(d.LockdownValues(true)) || vals["UniqueDeviceID"] != d.UDID {
		t.Fatalf("GetValue: %d keys, UDID %v", len(vals), vals["UniqueDeviceID"])
	}
	if v := call(t, nc, map[string]any{"Request": "GetValue", "Key": "ProductVersion"}); v["Value"] != d.ProductVersion {
		t.Fatalf("GetValue ProductVersion %v", v)
	}
	if v := call(t, nc, map[string]any{"Request": "GetValue", "Key": "NoSuchKey"}); v["Error"] != "MissingValue" {
		t.Fatalf("GetValue NoSuchKey %v", v)
	}
	if v := call(t, nc, map[string]any{"Request": "Frobnicate"}); v["Error"] != ErrUnknownRequest {
		t.Fatalf("unknown verb %v", v)
	}
}

func TestDeviceInfoService(t *testing.T) {
	d, r := startRSD(t, "", RSDOptions{})
	p, _ := r.Port("com.apple.coredevice.deviceinfo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rsd.DialClient(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply, err := c.Request(ctx, xpc.NewDict(
		"CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdeviceinfo",
		"CoreDevice.invocationIdentifier", "62419FC1-5ABF-4D96-BCA8-7A5F6F9A69EE",
		"CoreDevice.input", xpc.NewDict()))
	if err != nil {
		t.Fatal(err)
	}
	out, ok := reply.Body.(*xpc.Dict).Dict("CoreDevice.output")
	if !ok {
		t.Fatalf("reply %#v", reply.Body)
	}
	info, _ := out.Dict("deviceInfo")
	if u, _ := info.String("UniqueDeviceID"); u != d.UDID {
		t.Fatalf("deviceInfo UDID %q", u)
	}
}

// TestHostileClientsLeaveOthersServed sends garbage, stops mid-frame and opens 1000 idle
// connections; a well-behaved client must still be served, and nothing may leak (TestMain).
func TestHostileClientsLeaveOthersServed(t *testing.T) {
	_, r := startRSD(t, "", RSDOptions{})
	addr := r.Addr().String()
	var hostile []net.Conn
	defer func() {
		for _, c := range hostile {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		hostile = append(hostile, nc)
		return nc
	}
	dial().Write([]byte("this is not HTTP/2 at all, not even close......"))
	mid := dial()
	mid.Write([]byte(rsd.ClientPreface))
	mid.Write([]byte{0, 0, 40, 0, 0, 0, 0, 0, 1, 0x92, 0x0b}) // DATA header promising 40 bytes, then 2
	garbageAfterPreface := dial()
	garbageAfterPreface.Write([]byte(rsd.ClientPreface))
	garbageAfterPreface.Write([]byte{0, 0, 24, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			mu.Lock()
			hostile = append(hostile, nc)
			mu.Unlock()
		}()
	}
	wg.Wait()
	_, h := dialRSD(t, r)
	if len(h.Services) == 0 {
		t.Fatal("no services")
	}
}

// TestCloseEndsEverything checks that Close returns with clients still connected.
func TestCloseEndsEverything(t *testing.T) {
	d := NewDevice(profile.Default(), "close", nil)
	r, err := d.ServeRSD(context.Background(), TCPListen("127.0.0.1"), 0, RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := dialRSD(t, r)
	dialService(t, r, "com.apple.mobile.lockdown.remote.trusted")
	r.Close()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still up after Close")
	}
}
