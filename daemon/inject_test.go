package daemon

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// injectFixture is a manager over a simulator RSD on loopback, with or without shims.
type injectFixture struct {
	m    *Manager
	src  chanSource
	rsd  *sim.RSD
	mu   sync.Mutex
	last *loopTunnel
}

func newInjectFixture(t *testing.T, shim bool) *injectFixture {
	t.Helper()
	d := sim.NewDevice(profile.Default(), "", nil)
	r, err := d.ServeRSD(context.Background(), sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &injectFixture{src: chanSource{ev: make(chan Event)}, rsd: r}
	f.m = New(Config{
		Sources: []Source{f.src}, Shim: shim,
		LivenessInterval: time.Hour, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Open: func(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
			lt := &loopTunnel{port: r.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
			f.mu.Lock()
			f.last = lt
			f.mu.Unlock()
			return lt, Info{UDID: dev.UDID, DeviceName: "Test Phone"}, nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 1, ConnectionType: "USB", Source: "test"}}
	waitFor(t, "the device", func() bool { return len(f.m.InjectDevices()) == 1 })
	return f
}

func (f *injectFixture) get(t *testing.T, wait time.Duration, notGen uint64) api.InjectDevice {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d, err := f.m.InjectDevice(ctx, udid, notGen)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestInjectThroughShim: the document carries the device's handshake with the shim's ports,
// the shim's endpoint, lockdown's name; a rebuild ends a long-poll with a new generation.
func TestInjectThroughShim(t *testing.T) {
	f := newInjectFixture(t, true)
	d := f.get(t, 20*time.Second, 0)
	if !d.Ready || d.Generation == 0 || d.RSD == nil || d.Handshake == nil || d.Services == nil {
		t.Fatalf("not ready: %+v", d)
	}
	if d.Name != "Test Phone" {
		t.Errorf("name %q", d.Name)
	}
	e := f.m.Tunnels()[udid]
	if len(e) != 1 || e[0].Address != d.RSD.Host || e[0].Port != d.RSD.Port {
		t.Errorf("rsd %+v, GET / %+v", d.RSD, e)
	}
	if d.RSD.Port == f.rsd.Addr().(*net.TCPAddr).Port {
		t.Error("rsd is the device's own port, not the shim's")
	}
	props, _ := f.rsd.Handshake().Dict("Properties")
	if !reflect.DeepEqual(d.Handshake.Properties, props) {
		t.Error("properties are not the device's")
	}
	for _, s := range d.Services.Entries {
		port, _ := s.Value.(*xpc.Dict).String("Port")
		devPort, ok := f.rsd.Port(s.Key)
		if !ok || port == strconv.Itoa(devPort) {
			t.Errorf("service %s: port %s, device port %d (listed %v): not rewritten", s.Key, port, devPort, ok)
		}
	}

	// A long-poll for another generation ends when the tunnel is rebuilt.
	got := make(chan api.InjectDevice, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n, _ := f.m.InjectDevice(ctx, udid, d.Generation)
		got <- n
	}()
	f.mu.Lock()
	f.last.kill(errors.New("link dropped"))
	f.mu.Unlock()
	n := <-got
	if !n.Ready || n.Generation == d.Generation || n.Generation == 0 {
		t.Errorf("after rebuild: ready %v generation %d (was %d)", n.Ready, n.Generation, d.Generation)
	}

	// Cancelled: a short wait returns the device not ready, same generation.
	f.m.Cancel(udid)
	c := f.get(t, 100*time.Millisecond, 0)
	if c.Ready || c.Handshake != nil || c.RSD != nil || c.Generation != n.Generation {
		t.Errorf("cancelled: %+v", c)
	}
	if l := f.m.InjectDevices(); len(l) != 1 || l[0].Handshake != nil || l[0].UDID != udid {
		t.Errorf("list: %+v", l)
	}
	if _, err := f.m.InjectDevice(context.Background(), "nope", 0); !errors.Is(err, api.ErrNoDevice) {
		t.Errorf("unknown device: %v", err)
	}
}

// TestInjectWithoutShim: with no shim the handshake is read on request, and the document points
// at the tunnel's own endpoint with the device's own ports.
func TestInjectWithoutShim(t *testing.T) {
	f := newInjectFixture(t, false)
	d := f.get(t, 20*time.Second, 0)
	if !d.Ready || d.Handshake == nil {
		t.Fatalf("not ready: %+v", d)
	}
	if d.RSD.Host != "127.0.0.1" || d.RSD.Port != f.rsd.Addr().(*net.TCPAddr).Port {
		t.Errorf("rsd %+v, device %v", d.RSD, f.rsd.Addr())
	}
	want, _ := f.rsd.Handshake().Dict("Services")
	if !reflect.DeepEqual(d.Services, want) {
		t.Error("services are not the device's own")
	}
	again := f.get(t, time.Second, 0)
	if again.Generation != d.Generation || again.Handshake != d.Handshake {
		t.Error("the handshake was read again within one generation")
	}
}
