package daemon

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/rsd"
)

// handshakeTimeout bounds the RSD handshake read that fills the inject document when no shim
// has read it (the kernel backend without shims).
const handshakeTimeout = 10 * time.Second

// injectState is one device's part of the inject contract (inject/CONTRACT.md).
type injectState struct {
	// generation numbers the published tunnel: a fresh value from Manager.generations on every
	// publish, so it changes on every rebuild and never repeats in one daemon run.
	generation uint64
	// pending is the handshake the shim read for the tunnel being built.
	pending *rsd.Handshake
	// handshake is the device's handshake for this generation; nil until read.
	handshake *rsd.Handshake
}

// noteHandshake keeps the handshake the shim read for the tunnel about to be published.
func (d *deviceRun) noteHandshake(h *rsd.Handshake) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inject.pending = h
}

// newGenerationLocked starts a new tunnel generation at publish time.
func (d *deviceRun) newGenerationLocked() {
	d.inject.generation = d.m.generations.Add(1)
	d.inject.handshake, d.inject.pending = d.inject.pending, nil
}

// injectDevice is the device's inject document now, and the tunnel whose handshake is still
// to be read (nil when there is none to read).
func (d *deviceRun) injectDevice() (api.InjectDevice, Tunnel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	udid := d.key
	if d.info.UDID != "" {
		udid = d.info.UDID
	}
	out := api.InjectDevice{UDID: udid, Generation: d.inject.generation, State: d.state, Name: d.info.DeviceName}
	if d.state != StatePublished || d.tun == nil || d.paused || isDone(d.tun.Done()) {
		return out, nil // down, or going down: cancelled or ended but not yet torn down
	}
	h := d.inject.handshake
	if h == nil {
		return out, d.tun
	}
	addr, port := d.endpointLocked()
	out.RSD = &api.InjectEndpoint{Host: addr, Port: port}
	out.Handshake = h
	out.Services, _ = h.Raw.Dict("Services")
	if d.shim != nil {
		out.Services, _ = d.shim.Rewritten(h).Dict("Services")
	}
	out.Ready = true
	return out, nil
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// fillHandshake reads t's RSD handshake into the current generation, if t is still current.
func (d *deviceRun) fillHandshake(ctx context.Context, t Tunnel) error {
	h, err := readHandshake(ctx, t)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tun == t && d.inject.handshake == nil {
		d.inject.handshake = h
		close(d.notify)
		d.notify = make(chan struct{})
	}
	return nil
}

// readHandshake runs one RSD handshake through a tunnel and returns the device's handshake.
func readHandshake(ctx context.Context, t Tunnel) (*rsd.Handshake, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	nc, err := t.Dial(ctx, "tcp", net.JoinHostPort(t.ServerAddress().String(), strconv.Itoa(t.RSDPort())))
	if err != nil {
		return nil, fmt.Errorf("dial rsd: %w", err)
	}
	c, err := rsd.Client(ctx, nc, rsd.Options{})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return rsd.ReadHandshake(ctx, c, nil)
}

// InjectDevices lists every device as the inject routes show it (without waiting).
func (m *Manager) InjectDevices() []api.InjectDevice {
	runs := m.runs()
	out := make([]api.InjectDevice, 0, len(runs))
	for _, d := range runs {
		doc, _ := d.injectDevice()
		doc.Handshake, doc.Services = nil, nil
		out = append(out, doc)
	}
	return out
}

// InjectDevice is one device's inject document. It waits, until ctx ends, for the device to
// be ready with a generation other than notGen (0: any generation); when ctx ends first it
// returns the document as it is then.
func (m *Manager) InjectDevice(ctx context.Context, udid string, notGen uint64) (api.InjectDevice, error) {
	d := m.find(udid)
	if d == nil {
		return api.InjectDevice{}, fmt.Errorf("%w: %s", ErrUnknownDevice, udid)
	}
	for {
		changed := d.changed()
		doc, t := d.injectDevice()
		if doc.Ready && doc.Generation != notGen {
			return doc, nil
		}
		if t != nil {
			// Published without a shim: read the handshake now (bounded, even when ctx is).
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handshakeTimeout)
			err := d.fillHandshake(fctx, t)
			cancel()
			if err != nil {
				m.cfg.Log.Debug("inject: reading the handshake failed", "udid", udid, "err", err)
			} else {
				continue
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			doc, _ = d.injectDevice()
			return doc, nil
		case <-d.done:
			doc, _ = d.injectDevice()
			return doc, nil
		}
	}
}
