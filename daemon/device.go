package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/iosmux/iosmux/shim"
)

// Why an attempt was stopped from outside (the cause of its context).
var (
	errPaused      = errors.New("cancelled through the API")
	errPathChanged = errors.New("a better path arrived or the carrying path left")
)

// deviceRun is one device (one UDID): its paths, and the goroutine that builds a tunnel over
// the best one, publishes it, probes it and rebuilds it. The decisions are policy.go's.
type deviceRun struct {
	m   *Manager
	key string // the first UDID a source reported
	log *slog.Logger

	ctx    context.Context // ends when the device leaves or the daemon stops
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	paths     []Device // in the order reported
	carrying  Device   // the path of the current attempt
	abort     context.CancelCauseFunc
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

func newDeviceRun(m *Manager, first Device) *deviceRun {
	ctx, cancel := context.WithCancel(m.ctx)
	return &deviceRun{m: m, key: first.UDID, log: m.cfg.Log.With("udid", first.UDID), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), paths: []Device{first}, state: StateSeen, since: time.Now(),
		wake: make(chan struct{}), notify: make(chan struct{})}
}

// stop ends the run (device left or daemon stopping) and waits for its teardown.
func (d *deviceRun) stop() {
	d.cancel()
	<-d.done
}

// addPath records a path; a better one than the carrying path moves the tunnel to it.
func (d *deviceRun) addPath(p Device) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, q := range d.paths {
		if q.pathKey() != p.pathKey() {
			continue
		}
		if q.DeviceID == p.DeviceID {
			return // the same report again
		}
		// Re-plugged under a new usbmuxd id while its Detached was missed: start that path over.
		d.log.Info("path re-attached with a new id", "source", p.Source, "connection", p.ConnectionType,
			"old_id", q.DeviceID, "id", p.DeviceID)
		d.paths[i] = p
		if d.abort != nil && d.carrying.pathKey() == p.pathKey() {
			d.abort(errPathChanged)
		}
		return
	}
	d.paths = append(d.paths, p)
	d.log.Info("path added", "source", p.Source, "connection", p.ConnectionType, "paths", len(d.paths))
	d.repathLocked()
}

// removePath forgets a path (a Detached for an older DeviceID is ignored) and reports how
// many remain.
func (d *deviceRun) removePath(p Device) (left int, found bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paths = slices.DeleteFunc(d.paths, func(q Device) bool {
		if q.pathKey() == p.pathKey() && (p.DeviceID == 0 || q.DeviceID == p.DeviceID) {
			found = true
			return true
		}
		return false
	})
	if found && len(d.paths) > 0 {
		d.log.Info("path removed", "source", p.Source, "connection", p.ConnectionType, "paths", len(d.paths))
		d.repathLocked()
	}
	return len(d.paths), found
}

// removeSource forgets every path of one source.
func (d *deviceRun) removeSource(name string) (left int, found bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paths = slices.DeleteFunc(d.paths, func(q Device) bool {
		if q.Source == name {
			found = true
			return true
		}
		return false
	})
	if found && len(d.paths) > 0 {
		d.repathLocked()
	}
	return len(d.paths), found
}

// repathLocked stops the current attempt when another path should carry the tunnel, and wakes
// a run that waits after a failure: the new path deserves a try now.
func (d *deviceRun) repathLocked() {
	best, ok := bestPath(d.paths)
	if !ok {
		return
	}
	if d.abort != nil && best.pathKey() != d.carrying.pathKey() {
		d.log.Info("moving the tunnel to another path", "from", d.carrying.ConnectionType, "to", best.ConnectionType)
		d.abort(errPathChanged)
	}
	d.wakeLocked()
}

func (d *deviceRun) wakeLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

func (d *deviceRun) setState(state string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setStateLocked(state)
}

func (d *deviceRun) setStateLocked(state string) {
	d.state, d.since = state, time.Now()
	d.changedLocked()
}

func (d *deviceRun) changedLocked() {
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
	d.changedLocked()
}

func (d *deviceRun) lastError() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

// pause stops the tunnel, built or being built, and keeps it down until resume.
func (d *deviceRun) pause() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = true
	if d.abort != nil {
		d.abort(errPaused)
	}
}

// resume lets a paused or backing-off run try again now.
func (d *deviceRun) resume() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = false
	d.wakeLocked()
}

// beginAttempt picks the path for the next attempt and makes the context that pause and
// failover cancel; ok is false when the run is paused.
func (d *deviceRun) beginAttempt() (ctx context.Context, path Device, wake <-chan struct{}, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	wake = d.wake
	if d.paused {
		d.setStateLocked(StateCancelled)
		return nil, Device{}, wake, false
	}
	path, _ = bestPath(d.paths)
	ctx, d.abort = context.WithCancelCause(d.ctx)
	d.carrying = path
	d.attempts++
	d.stage = ""
	d.setStateLocked(StateOpening)
	return ctx, path, wake, true
}

func (d *deviceRun) endAttempt() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.abort != nil {
		d.abort(nil)
		d.abort = nil
	}
}

// run is the state machine loop.
func (d *deviceRun) run() {
	defer close(d.done)
	defer d.teardownShim()
	backoff := d.m.cfg.Backoff
	for d.ctx.Err() == nil {
		actx, path, wake, ok := d.beginAttempt()
		if !ok {
			select {
			case <-wake:
			case <-d.ctx.Done():
			}
			continue
		}
		err := d.openAndServe(actx, path)
		cause := context.Cause(actx)
		d.endAttempt()
		switch {
		case d.ctx.Err() != nil:
			return
		case errors.Is(cause, errPaused), errors.Is(cause, errPathChanged):
			continue // stopped from outside: no failure, no wait
		case err == nil:
			backoff = d.m.cfg.Backoff // it was up; start over gently
			continue
		}
		d.fail(err)
		d.log.Warn("tunnel failed", "err", err, "retry", backoff)
		d.setState(stateAfter(err))
		select {
		case <-time.After(backoff):
		case <-wake:
		case <-d.ctx.Done():
			return
		}
		backoff = nextBackoff(backoff, d.m.cfg.MaxBackoff)
	}
}

// openAndServe builds one tunnel over path, publishes it and watches it until it ends or ctx
// is cancelled. A nil error means the tunnel was up and ended (rebuild at once); an error
// means it never came up.
func (d *deviceRun) openAndServe(ctx context.Context, path Device) error {
	octx, clock := newBuildClock(ctx, d.m.cfg.OpenTimeout)
	stage := func(s string) {
		clock.stage(s)
		d.mu.Lock()
		d.stage = s
		d.changedLocked()
		d.mu.Unlock()
		d.log.Debug("tunnel stage", "stage", s)
	}
	t, info, err := d.m.cfg.Open(octx, path, stage)
	if err == nil && d.m.cfg.Shim {
		stage("shim")
		if err = d.ensureShim(octx, t); err != nil {
			t.Close()
		}
	}
	clock.stop()
	if err != nil {
		if cause := context.Cause(octx); errors.Is(cause, errOpenTimeout) && !errors.Is(err, errOpenTimeout) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		d.mu.Lock()
		st := d.stage
		d.mu.Unlock()
		if st != "" {
			err = fmt.Errorf("%s: %w", st, err)
		}
		return err
	}
	// Publish only if nobody cancelled the attempt meanwhile: pause takes d.mu too.
	d.mu.Lock()
	if ctx.Err() != nil {
		d.mu.Unlock()
		t.Close()
		return nil
	}
	d.tun, d.stage = t, ""
	if info != (Info{}) {
		d.info = info // keep what an earlier build learned when this one learned nothing
	}
	d.newGenerationLocked()
	d.setStateLocked(StatePublished)
	d.mu.Unlock()
	d.log.Info("tunnel published", "address", t.ServerAddress(), "rsd_port", t.RSDPort(), "interface", t.Interface(),
		"connection", path.ConnectionType, "source", path.Source)
	werr := d.watch(ctx, t)
	d.mu.Lock()
	d.tun = nil
	d.changedLocked()
	d.mu.Unlock()
	t.Close()
	if d.shim != nil {
		d.shim.ClearUpstream()
	}
	if werr != nil && ctx.Err() == nil {
		d.fail(werr)
		d.log.Warn("tunnel lost; rebuilding", "err", werr)
	}
	return nil
}

// ensureShim points the device's shim at the tunnel, creating the shim on first use.
func (d *deviceRun) ensureShim(ctx context.Context, t Tunnel) error {
	if d.shim == nil {
		host, err := d.m.cfg.hostUUID(d.key)
		if err != nil {
			return fmt.Errorf("host identity: %w", err)
		}
		s, err := shim.New(d.ctx, d.m.cfg.ShimHost, host, d.log)
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
	d.tun = nil
	d.mu.Unlock()
	if t != nil {
		t.Close()
	}
	if s != nil {
		s.Close()
	}
}

// watch waits for the tunnel to end: transport closed, probes failed, or ctx cancelled.
func (d *deviceRun) watch(ctx context.Context, t Tunnel) error {
	cfg := d.m.cfg
	timer := time.NewTimer(d.m.untilNextProbe())
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-t.Done():
			if err := t.Err(); err != nil {
				return fmt.Errorf("tunnel ended: %w", err)
			}
			return errors.New("tunnel ended")
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.LivenessTimeout)
		err := cfg.Probe(pctx, t)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			failures = 0
			timer.Reset(d.m.untilNextProbe())
			continue
		}
		failures++
		d.log.Warn("liveness probe failed", "failures", failures, "err", err)
		if failures >= cfg.LivenessFailures {
			return fmt.Errorf("liveness: %d probes failed: %w", failures, err)
		}
		timer.Reset(0) // probe again at once: a dead tunnel is noticed within one interval plus the timeouts
	}
}
