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
	// OpenTimeout bounds one whole tunnel build.
	OpenTimeout time.Duration
	// LivenessInterval is how often a published tunnel's RSD endpoint is checked.
	LivenessInterval time.Duration
	// LivenessFailures is how many checks in a row may fail before the tunnel is rebuilt.
	LivenessFailures int
	// Backoff is the first wait after a failure; it doubles up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// SourceRetry is the wait before a failed source is restarted.
	SourceRetry time.Duration
	Version     string
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
		c.LivenessInterval = 5 * time.Second
	}
	if c.LivenessFailures <= 0 {
		c.LivenessFailures = 2
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

// Device states, in order.
const (
	StateSeen      = "seen"
	StateOpening   = "opening"
	StatePublished = "published"
	StateBackoff   = "backoff"
	StateCancelled = "cancelled"
)

// Manager runs every device's state machine and answers the API.
type Manager struct {
	cfg     Config
	started time.Time

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutdown chan struct{}
	once     sync.Once

	generations atomic.Uint64 // the last tunnel generation handed out (inject.go)

	mu      sync.Mutex
	devices map[string]*deviceRun
	sources map[string]*api.SourceStatus
}

// New makes a manager; Run starts it.
func New(cfg Config) *Manager {
	return &Manager{cfg: cfg.withDefaults(), devices: map[string]*deviceRun{},
		sources: map[string]*api.SourceStatus{}, shutdown: make(chan struct{})}
}

// Run serves until ctx ends or Shutdown is called, then tears every tunnel down.
func (m *Manager) Run(ctx context.Context) error {
	m.started = time.Now()
	m.ctx, m.cancel = context.WithCancel(ctx)
	events := make(chan Event, 64)
	for _, s := range m.cfg.Sources {
		m.wg.Add(1)
		go m.runSource(s, events)
	}
	for {
		select {
		case ev := <-events:
			m.handle(ev)
		case <-m.ctx.Done():
			m.stopAll()
			return nil
		case <-m.shutdown:
			m.cancel()
		}
	}
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
		// A source that ended knows nothing about its devices any more.
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

func (m *Manager) detachSource(name string) {
	m.mu.Lock()
	var gone []*deviceRun
	for udid, d := range m.devices {
		if d.dev.Source == name {
			gone = append(gone, d)
			delete(m.devices, udid)
		}
	}
	m.mu.Unlock()
	for _, d := range gone {
		d.stop()
	}
}

// handle applies one source event.
func (m *Manager) handle(ev Event) {
	udid := ev.Device.UDID
	m.mu.Lock()
	d := m.devices[udid]
	if !ev.Attached {
		if d != nil && d.dev.Source == ev.Device.Source && d.dev.DeviceID == ev.Device.DeviceID {
			delete(m.devices, udid)
		} else {
			d = nil
		}
		m.mu.Unlock()
		if d != nil {
			m.cfg.Log.Info("device detached", "udid", udid)
			d.cancel() // its run tears down on its own; events keep flowing meanwhile
		}
		return
	}
	if d != nil {
		if d.dev.Source != ev.Device.Source || d.dev.DeviceID == ev.Device.DeviceID {
			m.mu.Unlock()
			return // one tunnel per device, whichever source saw it first
		}
		// Re-plugged with a new usbmuxd id while its Detached was missed: start over.
		m.cfg.Log.Info("device re-attached with a new id", "udid", udid, "old_id", d.dev.DeviceID, "id", ev.Device.DeviceID)
		d.cancel()
	}
	d = newDeviceRun(m, ev.Device)
	m.devices[udid] = d
	m.mu.Unlock()
	m.cfg.Log.Info("device attached", "udid", udid, "source", ev.Device.Source, "connection", ev.Device.ConnectionType)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		d.run()
	}()
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

// Cancel tears down a device's tunnel; it stays down until re-attached or started again.
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
	if d := m.devices[udid]; d != nil {
		return d
	}
	for _, d := range m.devices {
		if lockdown.SameUDID(d.dev.UDID, udid) || lockdown.SameUDID(d.publicUDID(), udid) {
			return d
		}
	}
	return nil
}

// ClearTunnels cancels every device's tunnel.
func (m *Manager) ClearTunnels() {
	for _, d := range m.runs() {
		d.pause()
	}
}

// checkRSD runs one RSD handshake through a tunnel: the liveness probe.
func checkRSD(ctx context.Context, t Tunnel) error {
	if _, err := readHandshake(ctx, t); err != nil {
		return fmt.Errorf("liveness: %w", err)
	}
	return nil
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
