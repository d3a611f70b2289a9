package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
)

// carrying is the connection type of the path that carries udid's tunnel, "" if none.
func (f *fixture) carrying(t *testing.T) (string, api.DeviceStatus) {
	t.Helper()
	for _, d := range f.m.Status().Devices {
		for _, p := range d.Paths {
			if p.Carrying {
				return p.ConnectionType, d
			}
		}
	}
	return "", api.DeviceStatus{}
}

func (f *fixture) lastVia() Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.via[len(f.via)-1]
}

// TestPathsFailover: one UDID listed as USB and Network stays published while either path
// remains, carries its tunnel over USB whenever USB is there, and leaves with its last path.
func TestPathsFailover(t *testing.T) {
	f := newFixture(t)
	usb := Device{UDID: udid, DeviceID: 1, ConnectionType: "USB", Source: "test"}
	netw := Device{UDID: udid, DeviceID: 2, ConnectionType: "Network", Source: "test"}
	published := func(ct string) func() bool {
		return func() bool {
			c, st := f.carrying(t)
			return c == ct && st.State == StatePublished && len(f.m.Tunnels()[udid]) == 1 &&
				f.m.Tunnels()[udid][0].Interface == "usbmux-"+udid+"-"+ct && f.lastVia().ConnectionType == ct
		}
	}
	f.src.ev <- Event{Attached: true, Device: netw}
	waitFor(t, "publication over Network", published("Network"))
	f.src.ev <- Event{Attached: true, Device: usb}
	waitFor(t, "the tunnel moving to USB", published("USB"))
	if st := f.m.Status(); len(st.Devices) != 1 || len(st.Devices[0].Paths) != 2 {
		t.Fatalf("one device with two paths, got %+v", st.Devices)
	}

	f.src.ev <- Event{Attached: false, Device: usb}
	waitFor(t, "failover to Network", published("Network"))
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 3, ConnectionType: "USB", Source: "test"}}
	waitFor(t, "back on USB after the replug", published("USB"))
	opens := f.opens.Load()
	f.src.ev <- Event{Attached: false, Device: netw}
	waitFor(t, "Network path gone", func() bool {
		_, st := f.carrying(t)
		return len(st.Paths) == 1
	})
	if c, _ := f.carrying(t); c != "USB" || f.opens.Load() != opens || len(f.m.Tunnels()[udid]) != 1 {
		t.Fatalf("losing the idle Network path disturbed the USB tunnel (carrying %q, %d→%d opens)", c, opens, f.opens.Load())
	}
	f.src.ev <- Event{Attached: false, Device: Device{UDID: udid, DeviceID: 3, ConnectionType: "USB", Source: "test"}}
	waitFor(t, "the device leaving with its last path", func() bool { return len(f.m.Status().Devices) == 0 && len(f.m.Tunnels()) == 0 })
}

// TestCancelReachesBuild: /cancel and /clear_tunnels stop a build in progress, nothing is
// published, and the stop is not recorded as a failure.
func TestCancelReachesBuild(t *testing.T) {
	for _, clear := range []bool{false, true} {
		t.Run(map[bool]string{false: "cancel", true: "clear_tunnels"}[clear], func(t *testing.T) {
			f := newFixture(t)
			var inside, sawCancel atomic.Int32
			f.mu.Lock()
			f.hook = func(ctx context.Context, dev Device) error {
				inside.Add(1)
				<-ctx.Done() // a stalled device: only cancellation ends this build
				sawCancel.Add(1)
				return ctx.Err()
			}
			f.mu.Unlock()
			f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 1, ConnectionType: "USB", Source: "test"}}
			waitFor(t, "the build to start", func() bool { return inside.Load() == 1 })
			if clear {
				f.m.ClearTunnels()
			} else {
				f.m.Cancel(udid)
			}
			waitFor(t, "the build to see the cancellation", func() bool { return sawCancel.Load() == 1 })
			waitFor(t, "state cancelled", func() bool {
				st := f.m.Status()
				return len(st.Devices) == 1 && st.Devices[0].State == StateCancelled
			})
			if st := f.m.Status().Devices[0]; st.LastError != "" || len(f.m.Tunnels()) != 0 {
				t.Fatalf("a cancelled build left %q / %v", st.LastError, f.m.Tunnels())
			}
			f.mu.Lock()
			f.hook = nil
			f.mu.Unlock()
			if _, err := f.m.StartTunnel(context.Background(), udid, "", ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCancelAfterBuildPublishesNothing: an opener that ignores its context and returns a
// tunnel after the cancel: the tunnel is closed, not published.
func TestCancelAfterBuildPublishesNothing(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	var inside atomic.Int32
	f.mu.Lock()
	f.hook = func(ctx context.Context, dev Device) error {
		inside.Add(1)
		<-release
		return nil
	}
	f.mu.Unlock()
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 1, Source: "test"}}
	waitFor(t, "the build to start", func() bool { return inside.Load() == 1 })
	f.m.Cancel(udid)
	close(release)
	waitFor(t, "the late tunnel closed", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.last == nil {
			return false
		}
		select {
		case <-f.last.done:
			return true
		default:
			return false
		}
	})
	if len(f.m.Tunnels()) != 0 || f.m.Status().Devices[0].State != StateCancelled {
		t.Fatalf("published after cancel: %v %+v", f.m.Tunnels(), f.m.Status().Devices)
	}
}

// TestProbeFailureRebuilds: failing liveness probes end the tunnel and a new one is built.
func TestProbeFailureRebuilds(t *testing.T) {
	var dead atomic.Bool
	var probes atomic.Int32
	f := newFixtureConfig(t, Config{LivenessFailures: 2, Probe: func(ctx context.Context, tu Tunnel) error {
		probes.Add(1)
		if dead.Load() {
			return errors.New("no echo reply")
		}
		return nil
	}})
	f.src.ev <- Event{Attached: true, Device: Device{UDID: udid, DeviceID: 1, Source: "test"}}
	waitFor(t, "probes of the published tunnel", func() bool { return probes.Load() >= 2 && len(f.m.Tunnels()[udid]) == 1 })
	opens := f.opens.Load()
	dead.Store(true)
	waitFor(t, "a rebuild after failed probes", func() bool {
		return f.opens.Load() > opens && strings.Contains(f.m.Status().Devices[0].LastError, "liveness: 2 probes failed")
	})
	dead.Store(false)
	waitFor(t, "publication", func() bool { return len(f.m.Tunnels()[udid]) == 1 })
}

// TestPingWithoutPinger: a tunnel without its own Ping is probed by a bare TCP connect, which
// fails once the endpoint is gone.
func TestPingWithoutPinger(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lt := &loopTunnel{port: ln.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
	if err := Ping(context.Background(), lt); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := Ping(context.Background(), lt); err == nil || !strings.Contains(err.Error(), "liveness") {
		t.Fatalf("ping of a closed endpoint: %v", err)
	}
}

// TestStatusWhileStarting: the API may call in from New on (run with -race).
func TestStatusWhileStarting(t *testing.T) {
	m := New(Config{Sources: []Source{chanSource{ev: make(chan Event)}}})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- m.Run(ctx) }()
	for range 50 {
		_ = m.Status()
		_ = m.Tunnels()
	}
	<-m.Ready()
	if st := m.Status(); st.StartedAt.IsZero() || len(st.Sources) != 1 {
		t.Fatalf("status %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUnreachableAddressSource: a hand-given endpoint that does not answer shows in the
// status route with its error, and is retried.
func TestUnreachableAddressSource(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var runs atomic.Int32
	src := countingSource{AddressSource{Addr: addr}, &runs}
	m := New(Config{Sources: []Source{src}, SourceRetry: 10 * time.Millisecond, Open: OpenAddress})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the endpoint's error in the status route, and a retry", func() bool {
		st := m.Status()
		return runs.Load() >= 2 && len(st.Sources) == 1 && st.Sources[0].State == "retrying" &&
			strings.Contains(st.Sources[0].LastError, addr) && strings.Contains(st.Sources[0].LastError, "unreachable")
	})
}

type countingSource struct {
	AddressSource
	runs *atomic.Int32
}

func (s countingSource) Run(ctx context.Context, out chan<- Event) error {
	s.runs.Add(1)
	return s.AddressSource.Run(ctx, out)
}

// TestDirectTunnelPing: a hand-given IPv6 endpoint answers the probe (an ICMPv6 echo as root, a
// TCP connect otherwise); one that is gone fails it.
func TestDirectTunnelPing(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ap := netip.MustParseAddrPort(ln.Addr().String())
	dt := &directTunnel{addr: ap, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dt.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	// An address nothing answers on (TEST-NET style ULA with no route or no host).
	gone := &directTunnel{addr: netip.MustParseAddrPort("[fd00:dead:beef::1]:58783"), done: make(chan struct{})}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := gone.Ping(short); err == nil {
		t.Fatal("a probe of an address nobody holds succeeded")
	}
}
