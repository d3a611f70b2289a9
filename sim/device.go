// Package sim is the virtual iPhone: the device side of every protocol iosmux speaks.
package sim

import (
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iosmux/iosmux/internal/lograte"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// Device is one simulated iPhone.
type Device struct {
	*profile.Device
	// UUID is the RSD handshake UUID, stable per simulated device (CDS rejects all-zero).
	UUID xpc.UUID
	Log  *slog.Logger

	lockdown *lockdownState   // lockdownd's trust, paired hosts and started services
	noisy    *lograte.Limiter // repeated dropped-connection warnings

	mu         sync.Mutex
	tunnelOpts TunnelOptions // for tunnels lockdownd's CoreDeviceProxy starts
	blackhole  atomic.Bool   // drop every packet the host sends through any tunnel
}

// NewDevice makes a simulated device of profile p; seed is a UDID to take, or any string to
// derive a distinct identity from ("" gives the profile's canonical identity).
func NewDevice(p *profile.Profile, seed string, log *slog.Logger) *Device {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pd := p.Device(seed)
	sum := sha256.Sum256([]byte("iosmux sim rsd uuid " + pd.UDID))
	var u xpc.UUID
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x40 // version 4 layout
	u[8] = u[8]&0x3f | 0x80
	log = log.With("udid", pd.UDID)
	return &Device{Device: pd, UUID: u, Log: log, lockdown: newLockdownState(), noisy: lograte.New(log, 10*time.Second, 5)}
}

// toXPC converts the profile's ordered Go values into XPC values.
func toXPC(v any) xpc.Value {
	switch t := v.(type) {
	case []profile.KV:
		d := &xpc.Dict{Entries: make([]xpc.Entry, 0, len(t))}
		for _, kv := range t {
			d.Entries = append(d.Entries, xpc.Entry{Key: kv.Key, Value: toXPC(kv.Value)})
		}
		return d
	case []any:
		a := make([]xpc.Value, len(t))
		for i, e := range t {
			a[i] = toXPC(e)
		}
		return a
	case int:
		return int64(t)
	}
	return v
}

// Identity is the device's identity as its RSD Handshake names it (UDID and handshake UUID),
// for tests that check a handshake came from this device.
func (d *Device) Identity() *rsd.Handshake {
	return &rsd.Handshake{UUID: d.UUID, Properties: xpc.NewDict("UniqueDeviceID", d.UDID)}
}
