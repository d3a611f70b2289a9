package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/shim"
)

// deviceRun is one device's state machine: open → publish → watch → (rebuild | stop).
type deviceRun struct {
	m   *Manager
	dev Device

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	state     string
	stage     string
	since     time.Time
	info      Info
	tun       Tunnel
	shim      *shim.Shim
	paused    bool
	wake      chan struct{} // closed to wake a paused or backing-off run
	notify    chan struct{} // closed and replaced on every state change
	attempts  int
	lastErr   string
	lastErrAt time.Time
	inject    injectState // what the inject routes serve (inject.go)
}

func newDeviceRun(m *Manager, dev Device) *deviceRun {
	ctx, cancel := context.WithCancel(m.ctx)
	return &deviceRun{m: m, dev: dev, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		state: StateSeen, since: time.Now(), wake: make(chan struct{}), notify: make(chan struct{})}
}

// stop ends the run (device left or daemon stopping) and waits for its teardown.
func (d *deviceRun) stop() {
	d.cancel()
	<-d.done
}

func (d *deviceRun) setState(state string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setStateLocked(state)
}

func (d *deviceRun) setStateLocked(state string) {
	d.state, d.since = state, time.Now()
	close(d.notify)
	d.notify = make(chan struct{})
}

func (d *deviceRun) changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.notify
}

func (d *deviceRun) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastErr, d.lastErrAt = err.Error(), time.Now()
	close(d.notify)
	d.notify = make(chan struct{})
}

func (d *deviceRun) lastError() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// pause tears the tunnel down and keeps it down until resume.
func (d *deviceRun) pause() {
	d.mu.Lock()
	d.paused = true
	t := d.tun
	d.mu.Unlock()
	if t != nil {
		t.Close()
	}
}

// resume lets a paused or backing-off run try again now.
func (d *deviceRun) resume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = false
	close(d.wake)
	d.wake = make(chan struct{})
}

// run is the state machine loop.
func (d *deviceRun) run() {
	log := d.m.cfg.Log.With("udid", d.dev.UDID)
	defer close(d.done)
	defer d.teardownShim()
	backoff := d.m.cfg.Backoff
	for d.ctx.Err() == nil {
		d.mu.Lock()
		paused, wake := d.paused, d.wake
		d.mu.Unlock()
		if paused {
			d.setState(StateCancelled)
			select {
			case <-wake:
				continue
			case <-d.ctx.Done():
				return
			}
		}
		d.setState(StateOpening)
		err := d.openAndServe()
		if d.ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = d.m.cfg.Backoff // it was up; start over gently
			continue
		}
		d.fail(err)
		log.Warn("tunnel failed", "err", err, "retry", backoff)
		d.setState(StateBackoff)
		select {
		case <-time.After(backoff):
		case <-wake:
		case <-d.ctx.Done():
			return
		}
		backoff = min(backoff*2, d.m.cfg.MaxBackoff)
	}
}

// openAndServe builds one tunnel, publishes it and watches it until it ends. A nil error
// means the tunnel was up and ended (rebuild at once); an error means it never came up.
func (d *deviceRun) openAndServe() error {
	log := d.m.cfg.Log.With("udid", d.dev.UDID)
	d.mu.Lock()
	d.attempts++
	d.mu.Unlock()
	octx, cancel := context.WithTimeout(d.ctx, d.m.cfg.OpenTimeout)
	stage := func(s string) {
		d.mu.Lock()
		d.stage = s
		d.mu.Unlock()
		log.Debug("tunnel stage", "stage", s)
	}
	t, info, err := d.m.cfg.Open(octx, d.dev, stage)
	if err == nil && d.m.cfg.Shim {
		stage("shim")
		err = d.ensureShim(octx, t)
		if err != nil {
			t.Close()
		}
	}
	cancel()
	if err != nil {
		d.mu.Lock()
		st := d.stage
		d.mu.Unlock()
		if st != "" {
			err = fmt.Errorf("%s: %w", st, err)
		}
		return err
	}
	d.mu.Lock()
	d.tun, d.stage = t, ""
	if info != (Info{}) {
		d.info = info // keep what an earlier build learned when this one learned nothing
	}
	d.newGenerationLocked()
	d.setStateLocked(StatePublished)
	d.mu.Unlock()
	log.Info("tunnel published", "address", t.ServerAddress(), "rsd_port", t.RSDPort(), "interface", t.Interface())
	werr := d.watch(t)
	t.Close()
	if d.shim != nil {
		d.shim.ClearUpstream()
	}
	d.mu.Lock()
	d.tun = nil
	d.mu.Unlock()
	if werr != nil && d.ctx.Err() == nil {
		d.fail(werr)
		log.Warn("tunnel lost; rebuilding", "err", werr)
	}
	return nil
}

// ensureShim points the device's shim at the tunnel, creating the shim on first use.
func (d *deviceRun) ensureShim(ctx context.Context, t Tunnel) error {
	if d.shim == nil {
		host, err := d.m.cfg.hostUUID(d.dev.UDID)
		if err != nil {
			return fmt.Errorf("host identity: %w", err)
		}
		s, err := shim.New(d.ctx, d.m.cfg.ShimHost, host, d.m.cfg.Log.With("udid", d.dev.UDID))
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.shim = s
		d.mu.Unlock()
	}
	h, err := d.shim.SetUpstream(ctx, t.Dial, t.ServerAddress().String(), t.RSDPort())
	d.noteHandshake(h)
	return err
}

func (d *deviceRun) teardownShim() {
	d.mu.Lock()
	s := d.shim
	d.shim = nil
	t := d.tun
	d.mu.Unlock()
	if t != nil {
		t.Close()
	}
	if s != nil {
		s.Close()
	}
}

// watch waits for the tunnel to end: transport closed, liveness failed, or run stopped.
func (d *deviceRun) watch(t Tunnel) error {
	tick := time.NewTicker(d.m.cfg.LivenessInterval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-t.Done():
			if err := t.Err(); err != nil {
				return fmt.Errorf("tunnel ended: %w", err)
			}
			return errors.New("tunnel ended")
		case <-d.ctx.Done():
			return nil
		case <-tick.C:
			if err := checkRSD(d.ctx, t); err != nil {
				failures++
				d.m.cfg.Log.Warn("liveness check failed", "udid", d.dev.UDID, "failures", failures, "err", err)
				if failures >= d.m.cfg.LivenessFailures {
					return err
				}
				continue
			}
			failures = 0
		}
	}
}

// publicUDID is the UDID clients see: lockdown's UniqueDeviceID once known (usbmuxd may
// report it without its dash), else the source's.
func (d *deviceRun) publicUDID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.info.UDID != "" {
		return d.info.UDID
	}
	return d.dev.UDID
}

// entry is the device's GET / entry, when published.
func (d *deviceRun) entry() (api.TunnelEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != StatePublished || d.tun == nil {
		return api.TunnelEntry{}, false
	}
	addr, port := d.endpointLocked()
	return api.TunnelEntry{Address: addr, Port: port, Interface: d.taskKey()}, true
}

// endpointLocked is the RSD address clients should use: the shim's, or the tunnel's own.
func (d *deviceRun) endpointLocked() (string, int) {
	if d.shim != nil {
		a := d.shim.RSDAddr()
		return a.IP.String(), a.Port
	}
	return d.tun.ServerAddress().String(), d.tun.RSDPort()
}

// taskKey is tunneld's "interface" value for a usbmux tunnel.
func (d *deviceRun) taskKey() string {
	ct := d.dev.ConnectionType
	if ct == "" {
		ct = "USB"
	}
	return "usbmux-" + d.dev.UDID + "-" + ct
}

func (d *deviceRun) startResult() (api.StartResult, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != StatePublished || d.tun == nil {
		return api.StartResult{}, false
	}
	addr, port := d.endpointLocked()
	iface := d.tun.Interface()
	if iface == "" {
		iface = "userspace"
	}
	return api.StartResult{Interface: iface, Port: port, Address: addr}, true
}

func (d *deviceRun) status() api.DeviceStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	udid := d.dev.UDID
	if d.info.UDID != "" {
		udid = d.info.UDID
	}
	s := api.DeviceStatus{UDID: udid, State: d.state, ConnectionType: d.dev.ConnectionType,
		Source: d.dev.Source, ProductType: d.info.ProductType, IOSVersion: d.info.ProductVersion,
		Since: d.since, UptimeSeconds: time.Since(d.since).Seconds(), Attempts: d.attempts,
		LastError: d.lastErr, LastErrorAt: d.lastErrAt, DeviceName: d.info.DeviceName}
	if d.state == StateOpening && d.stage != "" {
		s.State = StateOpening + ": " + d.stage
	}
	if d.tun != nil {
		s.Backend = "kernel"
		if b, ok := d.tun.(interface{ Backend() string }); ok {
			s.Backend = b.Backend()
		} else if d.tun.Interface() == "" {
			s.Backend = "userspace"
		}
		s.Interface = d.tun.Interface()
		s.TunnelAddress = d.tun.ServerAddress().String()
		s.RSDPort = d.tun.RSDPort()
		s.MTU = d.tun.MTU()
		s.BytesToDevice, s.BytesToHost = d.tun.Bytes()
		addr, port := d.endpointLocked()
		s.RSDEndpoint = net.JoinHostPort(addr, strconv.Itoa(port))
	}
	if d.shim != nil {
		for _, f := range d.shim.Failing() {
			s.ShimFailing = append(s.ShimFailing, fmt.Sprintf("%s: %v (since %s)", f.Endpoint, f.Err, f.Since.UTC().Format(time.RFC3339)))
		}
		sort.Strings(s.ShimFailing)
	}
	return s
}
