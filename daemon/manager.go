package daemon

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/xpc"
)

// Config tunes the manager; zero values take the defaults below.
type Config struct {
	Open    Opener
	Sources []Source
	Log     *slog.Logger
	// Shim advertises loopback shim endpoints instead of the tunnel's own address.
	Shim bool
	// ShimHost is the loopback address shims listen on.
	ShimHost string
	// HostUUID gives the RSD host UUID a device's shim presents to it, stable per device
	// (pairrecord.Store.HostUUID); nil makes a random one per shim.
	HostUUID func(udid string) ([16]byte, error)
	// OpenTimeout bounds one tunnel build, not counting the wait for the user to tap Trust
	// (the opener bounds that one itself).
	OpenTimeout time.Duration
	// LivenessInterval is the wait between two probes of a published tunnel.
	LivenessInterval time.Duration
	// LivenessTimeout bounds one probe.
	LivenessTimeout time.Duration
	// LivenessFailures is how many probes in a row may fail before the tunnel is rebuilt; a
	// failed probe is repeated at once, so a dead tunnel is noticed within
	// LivenessInterval + LivenessFailures×LivenessTimeout.
	LivenessFailures int
	// Probe checks a published tunnel; nil uses Ping (ICMPv6 echo through the tunnel).
	Probe func(ctx context.Context, t Tunnel) error
	// Backoff is the first wait after a failure; it doubles up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// SourceRetry is the wait before a failed source is restarted.
	SourceRetry time.Duration
	Version     string
	// Pairable lists the devices waiting to be paired that discovery saw (status route).
	Pairable func() []api.PairableStatus
}

func (c Config) withDefaults() Config {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ShimHost == "" {
		c.ShimHost = "127.0.0.1"
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 60 * time.Second
	}
	if c.LivenessInterval <= 0 {
		c.LivenessInterval = DefaultLivenessInterval
	}
	if c.LivenessTimeout <= 0 {
		c.LivenessTimeout = DefaultLivenessTimeout
	}
	if c.LivenessFailures <= 0 {
		c.LivenessFailures = 2
	}
	if c.Probe == nil {
		c.Probe = Ping
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	if c.SourceRetry <= 0 {
		c.SourceRetry = 2 * time.Second
	}
	return c
}

// Liveness defaults: a dead tunnel is noticed within 1 s + 2 × 750 ms = 2.5 s. An echo over
// USB comes back in about a millisecond; 750 ms leaves room for a phone on Wi-Fi in power save.
const (
	DefaultLivenessInterval = time.Second
	DefaultLivenessTimeout  = 750 * time.Millisecond
)

// Device states, in order.
const (
	StateSeen         = "seen"
	StateOpening      = "opening"
	StatePublished    = "published"
	StateBackoff      = "backoff"
	StateNeedsPairing = "needs pairing"
	StateCancelled    = "cancelled"
)

// Manager runs every device's state machine and answers the API.
type Manager struct {
	cfg     Config
	started time.Time

	ctx      context.Context // set by New, so the API may call in before Run
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutdown chan struct{}
	once     sync.Once
	ready    chan struct{}

	generations atomic.Uint64 // the last tunnel generation handed out (inject.go)

	mu      sync.Mutex
	devices map[string]*deviceRun // by the first UDID a source reported
	sources map[string]*api.SourceStatus
}

// New makes a manager; Run starts it. The API may be served from New on.
func New(cfg Config) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg.withDefaults(), started: time.Now(), ctx: ctx, cancel: cancel,
		devices: map[string]*deviceRun{}, sources: map[string]*api.SourceStatus{},
		shutdown: make(chan struct{}), ready: make(chan struct{})}
}

// Ready is closed once Run has started the sources.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Run serves until ctx ends or Shutdown is called, then tears every tunnel down.
func (m *Manager) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, m.cancel)
	defer stop()
	events := make(chan Event, 64)
	for _, s := range m.cfg.Sources {
		m.setSource(s.Name(), "starting", "")
		m.wg.Add(1)
		go m.runSource(s, events)
	}
	close(m.ready)
	for {
		select {
		case ev := <-events:
			if ev.Attached {
				m.attach(ev.Device)
			} else {
				m.detach(ev.Device)
			}
		case <-m.ctx.Done():
			m.stopAll()
			return nil
		case <-m.shutdown:
			m.cancel()
		}
	}
}

// untilNextProbe is the wait until the next liveness round. Every device probes on the same
// ticks (multiples of LivenessInterval since the manager started), so an idle daemon with many
// devices wakes once per interval rather than once per device.
func (m *Manager) untilNextProbe() time.Duration {
	iv := m.cfg.LivenessInterval
	return iv - time.Since(m.started)%iv
}

// Shutdown stops Run.
func (m *Manager) Shutdown() { m.once.Do(func() { close(m.shutdown) }) }

// runs is a snapshot of every device's run.
func (m *Manager) runs() []*deviceRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	runs := make([]*deviceRun, 0, len(m.devices))
	for _, d := range m.devices {
		runs = append(runs, d)
	}
	return runs
}

func (m *Manager) stopAll() {
	for _, d := range m.runs() {
		d.stop()
	}
	m.wg.Wait()
}

// runSource runs one source, restarting it after failures until the manager stops.
func (m *Manager) runSource(s Source, events chan<- Event) {
	defer m.wg.Done()
	last := ""
	for m.ctx.Err() == nil {
		m.setSource(s.Name(), "running", "")
		err := s.Run(m.ctx, events)
		if m.ctx.Err() != nil {
			return
		}
		msg := "source ended"
		if err != nil {
			msg = err.Error()
		}
		// Say it once; a usbmuxd that is simply not there would otherwise fill the log.
		logf := m.cfg.Log.Warn
		if msg == last {
			logf = m.cfg.Log.Debug
		}
		last = msg
		logf("device source failed; retrying", "source", s.Name(), "err", msg, "retry", m.cfg.SourceRetry)
		m.setSource(s.Name(), "retrying", msg)
		// A source that ended knows nothing about its paths any more.
		m.detachSource(s.Name())
		select {
		case <-time.After(m.cfg.SourceRetry):
		case <-m.ctx.Done():
		}
	}
}

func (m *Manager) setSource(name, state, lastErr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sources[name]
	if s == nil {
		s = &api.SourceStatus{Name: name}
		m.sources[name] = s
	}
	s.State = state
	if lastErr != "" {
		s.LastError = lastErr
	}
}

// attach adds a path: to the device of that UDID, or as a new device.
func (m *Manager) attach(p Device) {
	m.mu.Lock()
	d := m.findLocked(p.UDID)
	if d != nil {
		m.mu.Unlock()
		d.addPath(p)
		return
	}
	d = newDeviceRun(m, p)
	m.devices[d.key] = d
	m.mu.Unlock()
	m.cfg.Log.Info("device attached", "udid", p.UDID, "source", p.Source, "connection", p.ConnectionType)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		d.run()
	}()
}

// detach removes a path; the device leaves with its last one.
func (m *Manager) detach(p Device) {
	m.mu.Lock()
	d := m.findLocked(p.UDID)
	if d == nil {
		m.mu.Unlock()
		return
	}
	left, found := d.removePath(p)
	gone := found && left == 0
	if gone {
		delete(m.devices, d.key)
	}
	m.mu.Unlock()
	if gone {
		m.cfg.Log.Info("device detached", "udid", d.key)
		d.cancel() // its run tears down on its own; events keep flowing meanwhile
	}
}

// detachSource removes every path a source reported.
func (m *Manager) detachSource(name string) {
	m.mu.Lock()
	var gone []*deviceRun
	for key, d := range m.devices {
		if left, found := d.removeSource(name); found && left == 0 {
			gone = append(gone, d)
			delete(m.devices, key)
		}
	}
	m.mu.Unlock()
	for _, d := range gone {
		d.stop()
	}
}

// Tunnels lists published tunnels as tunneld's GET / does.
func (m *Manager) Tunnels() map[string][]api.TunnelEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]api.TunnelEntry{}
	for _, d := range m.devices {
		if e, ok := d.entry(); ok {
			udid := d.publicUDID()
			out[udid] = append(out[udid], e)
		}
	}
	return out
}

// Status reports every device and source.
func (m *Manager) Status() api.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := api.Status{Version: m.cfg.Version, StartedAt: m.started, UptimeSeconds: time.Since(m.started).Seconds(),
		Goroutines: runtime.NumGoroutine(), Devices: []api.DeviceStatus{}, Sources: []api.SourceStatus{}}
	for _, d := range m.devices {
		st.Devices = append(st.Devices, d.status())
	}
	for _, s := range m.sources {
		st.Sources = append(st.Sources, *s)
	}
	slices.SortFunc(st.Devices, func(a, b api.DeviceStatus) int { return strings.Compare(a.UDID, b.UDID) })
	slices.SortFunc(st.Sources, func(a, b api.SourceStatus) int { return strings.Compare(a.Name, b.Name) })
	if m.cfg.Pairable != nil {
		st.Pairable = m.cfg.Pairable()
	}
	return st
}

// ErrUnknownDevice means no source has reported the UDID.
var ErrUnknownDevice = fmt.Errorf("daemon: %w", api.ErrNoDevice)

// StartTunnel returns the device's tunnel, waking a cancelled device and waiting for publication.
func (m *Manager) StartTunnel(ctx context.Context, udid, connectionType, ip string) (api.StartResult, error) {
	d := m.find(udid)
	if d == nil {
		return api.StartResult{}, fmt.Errorf("%w: %s", ErrUnknownDevice, udid)
	}
	d.resume()
	for {
		if r, ok := d.startResult(); ok {
			return r, nil
		}
		select {
		case <-d.changed():
		case <-ctx.Done():
			return api.StartResult{}, fmt.Errorf("daemon: waiting for %s: %w (last error: %s)", udid, ctx.Err(), d.lastError())
		}
	}
}

// Cancel tears down a device's tunnel, or stops the one being built; it stays down until
// re-attached or started again.
func (m *Manager) Cancel(udid string) {
	if d := m.find(udid); d != nil {
		d.pause()
	}
}

// find looks a device up by the UDID its source reported or the one lockdown reported, with
// or without the dash Linux usbmuxd may drop (lockdown.md §2.4).
func (m *Manager) find(udid string) *deviceRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.findLocked(udid)
}

func (m *Manager) findLocked(udid string) *deviceRun {
	if d := m.devices[udid]; d != nil {
		return d
	}
	for _, d := range m.devices {
		if lockdown.SameUDID(d.key, udid) || lockdown.SameUDID(d.publicUDID(), udid) {
			return d
		}
	}
	return nil
}

// ClearTunnels cancels every device's tunnel, built or being built.
func (m *Manager) ClearTunnels() {
	for _, d := range m.runs() {
		d.pause()
	}
}

// hostUUID is the host identity the device's shim presents.
func (c Config) hostUUID(udid string) (xpc.UUID, error) {
	if c.HostUUID != nil {
		return c.HostUUID(udid)
	}
	var u xpc.UUID
	_, err := rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u, err
}
