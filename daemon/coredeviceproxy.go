package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Pair pairs (the device shows Trust) when no record is found.
	Pair bool
	// Backend makes the host side of the tunnel.
	Backend tunnel.Backend
	// RequestMTU is asked for in the CDTunnel handshake; MTUClamp caps the device MTU.
	RequestMTU, MTUClamp int
	// Coalesce lets several packets to the device share a TLS record and a write. Off by
	// default: pymobiledevice3 measured USB CoreDeviceProxy (iOS 26.5) breaking under
	// coalesced writes while Frida coalesces on the same path; UNCONFIRMED (tunnel.md §6).
	Coalesce bool
	Log      *slog.Logger
}

// ErrNoPairRecord means no pair record was found and pairing is off.
var ErrNoPairRecord = errors.New("no pair record for the device (pair with 'iosmuxd pair' or import one)")

// Open builds one tunnel to dev.
func (c *CoreDeviceProxy) Open(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	mux := c.Muxes[dev.Source]
	if mux == nil {
		return nil, Info{}, fmt.Errorf("no usbmuxd for source %q", dev.Source)
	}
	id := uint32(dev.DeviceID)
	stage("pair record")
	rec, err := c.record(ctx, mux, dev, stage)
	if err != nil {
		return nil, Info{}, err
	}
	stage("lockdown connect")
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	lc, err := mux.Lockdown(sctx, id)
	if err != nil {
		return nil, Info{}, err
	}
	defer lc.Close()
	stage("StartSession")
	if err := lc.StartSession(sctx, rec); err != nil {
		if errors.Is(err, lockdown.ErrInvalidHostID) {
			return nil, Info{}, fmt.Errorf("%w (the device does not know this pair record: pair again)", err)
		}
		return nil, Info{}, err
	}
	stage("GetValue")
	var info Info
	info.ProductType, _ = lc.GetString(sctx, "", "ProductType")
	info.ProductVersion, _ = lc.GetString(sctx, "", "ProductVersion")
	info.UDID, _ = lc.GetString(sctx, "", "UniqueDeviceID")
	info.DeviceName, _ = lc.GetString(sctx, "", "DeviceName")
	stage("StartService " + CoreDeviceProxyService)
	svc, err := lc.StartService(sctx, CoreDeviceProxyService, nil)
	if err != nil {
		if errors.Is(err, lockdown.ErrInvalidService) {
			return nil, info, fmt.Errorf("%w (CoreDeviceProxy needs iOS 17.4 or later; device has %s)", err, info.ProductVersion)
		}
		return nil, info, err
	}
	stage("service connect")
	nc, err := mux.ConnectService(sctx, id, svc, rec)
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

// record finds the device's pair record: iosmux's store, then usbmuxd, then the imports;
// with Pair set it pairs when none is found.
func (c *CoreDeviceProxy) record(ctx context.Context, mux *lockdown.Mux, dev Device, stage func(string)) (*pairrecord.Record, error) {
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
	if err == nil {
		if c.Store != nil {
			if err := c.Store.Save(dev.UDID, rec); err != nil {
				c.Log.Warn("could not keep a copy of the pair record", "udid", dev.UDID, "err", err)
			} else {
				c.Log.Info("imported pair record", "udid", dev.UDID, "from", fmt.Sprint(src))
			}
		}
		return rec, nil
	}
	if !c.Pair {
		return nil, fmt.Errorf("%w: %v", ErrNoPairRecord, err)
	}
	stage("pairing (tap Trust on the device)")
	pctx, pcancel := context.WithTimeout(ctx, PairTimeout)
	defer pcancel()
	rec, err = mux.Pair(pctx, lockdown.Device{ID: uint32(dev.DeviceID), UDID: dev.UDID, ConnectionType: dev.ConnectionType}, lockdown.PairOptions{})
	if err != nil {
		return nil, err
	}
	if c.Store != nil {
		if err := c.Store.Save(dev.UDID, rec); err != nil {
			return nil, fmt.Errorf("saving the new pair record: %w", err)
		}
	}
	return rec, nil
}
