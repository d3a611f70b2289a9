package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// loopTunnel stands in for a tunnel: the "device" is a simulator RSD on loopback.
type loopTunnel struct {
	port int
	once sync.Once
	done chan struct{}
	err  error
}

func (t *loopTunnel) ServerAddress() netip.Addr { return netip.MustParseAddr("127.0.0.1") }
func (t *loopTunnel) RSDPort() int              { return t.port }
func (t *loopTunnel) MTU() int                  { return 1280 }
func (t *loopTunnel) Interface() string         { return "" }
func (t *loopTunnel) Dial(ctx context.Context, n, a string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, n, a)
}
func (t *loopTunnel) Done() <-chan struct{}   { return t.done }
func (t *loopTunnel) Err() error              { return t.err }
func (t *loopTunnel) Close() error            { t.kill(nil); return nil }
func (t *loopTunnel) Bytes() (uint64, uint64) { return 1, 2 }
func (t *loopTunnel) kill(err error)          { t.once.Do(func() { t.err = err; close(t.done) }) }

// chanSource reports whatever the test sends.
type chanSource struct{ ev chan Event }

func (s chanSource) Name() string { return "test" }
func (s chanSource) Run(ctx context.Context, out chan<- Event) error {
	for {
		select {
		case e := <-s.ev:
			out <- e
		case <-ctx.Done():
			return nil
		}
	}
}

type fixture struct {
	m      *Manager
	src    chanSource
	rsd    *sim.RSD
	opens  atomic.Int32
	fail   atomic.Bool
	mu     sync.Mutex
	last   *loopTunnel
	via    []Device                                    // the path of every open
	hook   func(ctx context.Context, dev Device) error // runs inside Open when set
	cancel context.CancelFunc
	runErr chan error
}

func newFixture(t *testing.T) *fixture { return newFixtureConfig(t, Config{}) }

// newFixtureConfig starts a manager with cfg's liveness and probe settings.
func newFixtureConfig(t *testing.T, cfg Config) *fixture {
	d := sim.NewDevice(profile.Default(), "", nil)
	r, err := d.ServeRSD(context.Background(), sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{src: chanSource{ev: make(chan Event)}, rsd: r, runErr: make(chan error, 1)}
	if cfg.LivenessInterval == 0 {
		cfg.LivenessInterval = 50 * time.Millisecond
	}
	f.m = New(Config{
		Sources: []Source{f.src}, Shim: true, Probe: cfg.Probe, LivenessFailures: cfg.LivenessFailures,
		LivenessInterval: cfg.LivenessInterval, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Open: func(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
			f.opens.Add(1)
			f.mu.Lock()
			f.via = append(f.via, dev)
			hook := f.hook
			f.mu.Unlock()
			stage("CDTunnel handshake")
			if f.fail.Load() {
				return nil, Info{}, errors.New("device stalled")
			}
			if hook != nil {
				if err := hook(ctx, dev); err != nil {
					return nil, Info{}, err
				}
			}
			lt := &loopTunnel{port: r.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
			f.mu.Lock()
			f.last = lt
			f.mu.Unlock()
			return lt, Info{ProductType: "iPhone13,2", ProductVersion: "17.5.1"}, nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.runErr <- f.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-f.runErr; r.Close() })
	return f
}

// waitFor polls cond with a generous bound (a failure bound, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const udid = "00008101-000A1B2C3D4E5F01"

func TestLifecycle(t *testing.T) {
	f := newFixture(t)
	dev := Device{UDID: udid, DeviceID: 1, ConnectionType: "USB", Source: "test"}
	f.src.ev <- Event{Attached: true, Device: dev}
	waitFor(t, "publication", func() bool { return len(f.m.Tunnels()[udid]) == 1 })
	e := f.m.Tunnels()[udid][0]
	if e.Address != "127.0.0.1" || e.Interface != "usbmux-"+udid+"-USB" || e.Port == f.rsd.Addr().(*net.TCPAddr).Port {
		t.Fatalf("entry %+v should advertise the shim", e)
	}
	// The advertised endpoint answers with the device's handshake.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, net.JoinHostPort(e.Address, strconv.Itoa(e.Port)), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if h.UDID() != udid {
		t.Fatalf("handshake UDID %s", h.UDID())
	}

	// Killing the tunnel rebuilds it.
	f.mu.Lock()
	first := f.last
	f.mu.Unlock()
	first.kill(errors.New("killed by test"))
	waitFor(t, "rebuild", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.last != first && len(f.m.Tunnels()[udid]) == 1
	})
	if st := f.m.Status(); st.Devices[0].LastError == "" || st.Devices[0].Attempts < 2 {
		t.Fatalf("status after rebuild %+v", st.Devices[0])
	}

	// Cancel keeps it down; start-tunnel brings it back.
	f.m.Cancel(udid)
	waitFor(t, "cancel", func() bool { return len(f.m.Tunnels()) == 0 })
	res, err := f.m.StartTunnel(ctx, udid, "", "")
	if err != nil || res.Port != e.Port {
		t.Fatalf("start-tunnel %+v %v (the shim port stays stable)", res, err)
	}

	// Detach removes the entry; re-attach restores it.
	f.src.ev <- Event{Attached: false, Device: dev}
	waitFor(t, "removal", func() bool { return len(f.m.Tunnels()) == 0 && len(f.m.Status().Devices) == 0 })
	f.src.ev <- Event{Attached: true, Device: dev}
	waitFor(t, "re-publication", func() bool { return len(f.m.Tunnels()[udid]) == 1 })
}

func TestFailureNamesStageAndBacksOff(t *testing.T) {
	f := newFixture(t)
	f.fail.Store(true)
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, Source: "test"}}
	waitFor(t, "retries", func() bool { return f.opens.Load() >= 3 })
	st := f.m.Status()
	if len(st.Devices) != 1 || st.Devices[0].LastError != "CDTunnel handshake: device stalled" {
		t.Fatalf("status %+v", st.Devices)
	}
	if len(f.m.Tunnels()) != 0 {
		t.Fatal("a failing device was published")
	}
	f.fail.Store(false)
	waitFor(t, "recovery", func() bool { return len(f.m.Tunnels()[udid]) == 1 })
}

func TestStartTunnelUnknownDevice(t *testing.T) {
	f := newFixture(t)
	if _, err := f.m.StartTunnel(context.Background(), "nope", "", ""); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("err %v", err)
	}
}

func TestReattachWithNewIDStartsOver(t *testing.T) {
	f := newFixture(t)
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 1, Source: "test"}}
	waitFor(t, "publication", func() bool { return len(f.m.Tunnels()[udid]) == 1 })
	opens := f.opens.Load()
	// A missed Detached: the same device shows up again under a new usbmuxd id.
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 2, Source: "test"}}
	waitFor(t, "a new run for the new id", func() bool {
		return f.opens.Load() > opens && len(f.m.Tunnels()[udid]) == 1
	})
	// The old id's Detached no longer removes the device.
	f.src.ev <- Event{Attached: false, Device: Device{UDID: udid, DeviceID: 1, Source: "test"}}
	f.src.ev <- Event{Attached: true, Device: Device{UDID: "other", DeviceID: 3, Source: "test"}}
	waitFor(t, "the next event", func() bool { return len(f.m.Status().Devices) == 2 })
	if len(f.m.Tunnels()[udid]) != 1 {
		t.Fatal("a stale Detached removed the device")
	}
}
