package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/tunnel"
)

// CoreDeviceProxyService is the lockdown service that carries the iOS 17.4+ tunnel (tunnel.md §7).
const CoreDeviceProxyService = "com.apple.internal.devicecompute.CoreDeviceProxy"

// Stage timeouts of one CoreDeviceProxy tunnel build.
const (
	StageTimeout = 15 * time.Second
	PairTimeout  = 2 * time.Minute // the user must tap Trust
)

// CoreDeviceProxy opens tunnels through usbmuxd and lockdown (path D of tunnel.md).
type CoreDeviceProxy struct {
	// Muxes maps a source's Name to its usbmuxd.
	Muxes map[string]*lockdown.Mux
	// Store is iosmux's own pair-record directory; records found elsewhere are copied in.
	Store *pairrecord.Store
	// Imports are the other places a pair record may be (libimobiledevice, pymobiledevice3).
	Imports []pairrecord.Source
	// Pair pairs (the device shows Trust) when no record is found or the device refuses it.
	Pair bool
	// PairTimeout bounds the wait for the user to tap Trust; 0 means PairTimeout.
	PairTimeout time.Duration
	// Backend makes the host side of the tunnel.
	Backend tunnel.Backend
	// RequestMTU is asked for in the CDTunnel handshake; MTUClamp caps the device MTU.
	RequestMTU, MTUClamp int
	// Coalesce lets several packets to the device share a TLS record and a write. Off by
	// default: pymobiledevice3 measured USB CoreDeviceProxy (iOS 26.5) breaking under
	// coalesced writes while Frida coalesces on the same path; UNCONFIRMED (tunnel.md §6).
	Coalesce bool
	Log      *slog.Logger

	refusals refusals // why each device last refused its record, while it has none it accepts
}

// refusals remembers, per UDID, why the device refused its last record, so that with pairing
// off every later attempt (which finds no record at all) still says what happened.
type refusals struct {
	mu  sync.Mutex
	why map[string]string
}

func (r *refusals) set(udid, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.why == nil {
		r.why = map[string]string{}
	}
	r.why[udid] = why
}

func (r *refusals) clear(udid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.why, udid)
}

func (r *refusals) get(udid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	why, ok := r.why[udid]
	return why, ok
}

// errRefusedNoPair is the needs-pairing error of a device that refused its record.
func errRefusedNoPair(why any) error {
	return fmt.Errorf("%w: the device refused its pair record (%v) and pairing is off: pair with 'iosmuxd pair' or import a record", ErrNeedsPairing, why)
}

// ErrNoPairRecord means no pair record was found and pairing is off.
var ErrNoPairRecord = fmt.Errorf("%w: no pair record for it (pair with 'iosmuxd pair' or import one)", ErrNeedsPairing)

// Open builds one tunnel to dev.
func (c *CoreDeviceProxy) Open(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	mux := c.Muxes[dev.Source]
	if mux == nil {
		return nil, Info{}, fmt.Errorf("no usbmuxd for source %q", dev.Source)
	}
	stage("pair record")
	rec, err := c.record(ctx, mux, dev)
	if errors.Is(err, pairrecord.ErrNotFound) {
		if !c.Pair {
			if why, ok := c.refusals.get(dev.UDID); ok {
				return nil, Info{}, errRefusedNoPair(why)
			}
			return nil, Info{}, fmt.Errorf("%w: %v", ErrNoPairRecord, err)
		}
		rec, err = c.pair(ctx, mux, dev, stage)
	}
	if err != nil {
		return nil, Info{}, err
	}
	lc, info, err := c.session(ctx, mux, dev, rec, stage)
	if refused(err) {
		lc, info, rec, err = c.renew(ctx, mux, dev, rec, err, stage)
	}
	if err != nil {
		return nil, info, err
	}
	c.refusals.clear(dev.UDID)
	defer lc.Close()
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	stage("StartService " + CoreDeviceProxyService)
	svc, err := lc.StartService(sctx, CoreDeviceProxyService, nil)
	if err != nil {
		if errors.Is(err, lockdown.ErrInvalidService) {
			return nil, info, fmt.Errorf("%w (CoreDeviceProxy needs iOS 17.4 or later; device has %s)", err, info.ProductVersion)
		}
		return nil, info, err
	}
	stage("service connect")
	nc, err := mux.ConnectService(sctx, uint32(dev.DeviceID), svc, rec)
	if err != nil {
		return nil, info, err
	}
	stage("CDTunnel handshake")
	t, err := tunnel.Start(sctx, nc, tunnel.Options{Backend: c.Backend, RequestMTU: c.RequestMTU,
		MTUClamp: c.MTUClamp, OnePacketPerWrite: !c.Coalesce, Log: c.Log.With("udid", dev.UDID)})
	if err != nil {
		return nil, info, err
	}
	return t, info, nil
}

// session connects to lockdownd and starts a session with rec, then reads what the status
// route shows about the device.
func (c *CoreDeviceProxy) session(ctx context.Context, mux *lockdown.Mux, dev Device, rec *pairrecord.Record, stage func(string)) (*lockdown.Client, Info, error) {
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	stage("lockdown connect")
	lc, err := mux.Lockdown(sctx, uint32(dev.DeviceID))
	if err != nil {
		return nil, Info{}, err
	}
	stage("StartSession")
	if err := lc.StartSession(sctx, rec); err != nil {
		lc.Close()
		return nil, Info{}, err
	}
	stage("GetValue")
	var info Info
	info.ProductType, _ = lc.GetString(sctx, "", "ProductType")
	info.ProductVersion, _ = lc.GetString(sctx, "", "ProductVersion")
	info.UDID, _ = lc.GetString(sctx, "", "UniqueDeviceID")
	info.DeviceName, _ = lc.GetString(sctx, "", "DeviceName")
	return lc, info, nil
}

// refused reports whether the device refused the pair record itself (reset, erased, or
// re-paired with another host), as opposed to failing for another reason.
func refused(err error) bool {
	var le *lockdown.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.Code {
	case lockdown.CodeInvalidHostID, lockdown.CodeInvalidPairRecord, lockdown.CodeMissingPairRecord:
		return true
	}
	return false
}

// renew is the pair-record lifecycle after the device refused stale: usbmuxd's record is
// tried (the host may have re-paired outside iosmux); if that is refused too, iosmux's copy is
// moved aside (kept, never deleted) and the device is paired again, unless pairing is off. It
// returns the session and the record the device accepted.
func (c *CoreDeviceProxy) renew(ctx context.Context, mux *lockdown.Mux, dev Device, stale *pairrecord.Record, why error, stage func(string)) (*lockdown.Client, Info, *pairrecord.Record, error) {
	c.Log.Warn("the device refused its pair record", "udid", dev.UDID, "host_id", stale.HostID, "err", why)
	stage("pair record refused: reading usbmuxd's")
	rctx, cancel := context.WithTimeout(ctx, StageTimeout)
	urec, err := mux.ReadPairRecord(rctx, dev.UDID)
	cancel()
	if err == nil && urec.HostID != stale.HostID {
		lc, info, err := c.session(ctx, mux, dev, urec, stage)
		if err == nil {
			c.replace(dev.UDID, urec, "usbmuxd")
			return lc, info, urec, nil
		}
		if !refused(err) {
			return nil, Info{}, nil, err
		}
		why = err
	}
	c.moveAside(dev.UDID)
	if !c.Pair {
		c.refusals.set(dev.UDID, why.Error())
		return nil, Info{}, nil, errRefusedNoPair(why)
	}
	rec, err := c.pair(ctx, mux, dev, stage)
	if err != nil {
		return nil, Info{}, nil, err
	}
	lc, info, err := c.session(ctx, mux, dev, rec, stage)
	return lc, info, rec, err
}

// replace keeps rec as the device's record in iosmux's store, the old one moved aside.
func (c *CoreDeviceProxy) replace(udid string, rec *pairrecord.Record, from string) {
	if c.Store == nil {
		return
	}
	c.moveAside(udid)
	if err := c.Store.Save(udid, rec); err != nil {
		c.Log.Warn("could not keep a copy of the pair record", "udid", udid, "err", err)
		return
	}
	c.Log.Info("kept the pair record the device accepts", "udid", udid, "from", from)
}

// moveAside renames iosmux's copy of the device's record so it is no longer used.
func (c *CoreDeviceProxy) moveAside(udid string) {
	if c.Store == nil {
		return
	}
	to, err := c.Store.MoveAside(udid)
	switch {
	case err != nil:
		c.Log.Warn("could not move the refused pair record aside", "udid", udid, "err", err)
	case to != "":
		c.Log.Info("moved the refused pair record aside", "udid", udid, "to", to)
	}
}

// record finds the device's pair record: iosmux's store, then usbmuxd, then the imports. It
// returns an error wrapping pairrecord.ErrNotFound when there is none.
func (c *CoreDeviceProxy) record(ctx context.Context, mux *lockdown.Mux, dev Device) (*pairrecord.Record, error) {
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	if c.Store != nil {
		// A record of ours that cannot be read is an error to fix, not a reason to pair again
		// and overwrite it.
		rec, err := c.Store.Load(sctx, dev.UDID)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, pairrecord.ErrNotFound) {
			return nil, fmt.Errorf("pair record in %s: %w (fix or delete it)", c.Store.Dir(), err)
		}
	}
	sources := []pairrecord.Source{pairrecord.Usbmuxd(mux, "usbmuxd "+mux.String())}
	sources = append(sources, c.Imports...)
	rec, src, err := pairrecord.Find(sctx, dev.UDID, sources...)
	if err != nil {
		return nil, err
	}
	if c.Store != nil {
		if err := c.Store.Save(dev.UDID, rec); err != nil {
			c.Log.Warn("could not keep a copy of the pair record", "udid", dev.UDID, "err", err)
		} else {
			c.Log.Info("imported pair record", "udid", dev.UDID, "from", fmt.Sprint(src))
		}
	}
	return rec, nil
}

// pair asks the device to trust this host and keeps the new record. The user's wait is bounded
// by PairTimeout, apart from the build's own timeout (the stage starts with StagePairing).
func (c *CoreDeviceProxy) pair(ctx context.Context, mux *lockdown.Mux, dev Device, stage func(string)) (*pairrecord.Record, error) {
	name := c.deviceName(ctx, mux, dev)
	stage(StagePairing + ": tap Trust on " + name)
	c.Log.Info("tap Trust on "+name, "udid", dev.UDID)
	limit := c.PairTimeout
	if limit <= 0 {
		limit = PairTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	rec, err := mux.Pair(pctx, lockdown.Device{ID: uint32(dev.DeviceID), UDID: dev.UDID, ConnectionType: dev.ConnectionType}, lockdown.PairOptions{})
	if err != nil {
		return nil, err
	}
	if c.Store != nil {
		if err := c.Store.Save(dev.UDID, rec); err != nil {
			return nil, fmt.Errorf("saving the new pair record: %w", err)
		}
	}
	c.Log.Info("paired", "udid", dev.UDID, "name", name)
	return rec, nil
}

// deviceName is what the user calls the device (lockdown's DeviceName, readable without a
// session), or its UDID.
func (c *CoreDeviceProxy) deviceName(ctx context.Context, mux *lockdown.Mux, dev Device) string {
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	lc, err := mux.Lockdown(sctx, uint32(dev.DeviceID))
	if err != nil {
		return dev.UDID
	}
	defer lc.Close()
	if name, err := lc.GetString(sctx, "", "DeviceName"); err == nil && name != "" {
		return name
	}
	return dev.UDID
}
