package sim

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/sim/profile"
)

// LockdownType is lockdownd's QueryType answer (lockdown.md §4).
const LockdownType = "com.apple.mobile.lockdown"

// ErrUnknownRequest is the Error string for a verb the simulator does not implement.
// UNCONFIRMED: no source gives the real device's string for an unknown Request.
const ErrUnknownRequest = "InvalidRequest"

// lockdownIdle bounds how long a lockdown connection may sit without a request.
const lockdownIdle = 5 * time.Minute

// lockdownConn is one lockdown conversation with the simulated lockdownd.
type lockdownConn struct {
	d         *Device
	rw        io.ReadWriter
	nc        net.Conn
	inSession bool
}

// serveRemoteLockdown serves com.apple.mobile.lockdown.remote.{trusted,untrusted} (rsd.md §4.1):
// RSDCheckin, then requests in the clear; trusted answers with the in-session dictionary.
func (d *Device) serveRemoteLockdown(ctx context.Context, nc net.Conn, trusted bool) {
	lc := &lockdownConn{d: d, rw: nc, nc: nc, inSession: trusted}
	lc.serve(ctx)
}

func (lc *lockdownConn) serve(ctx context.Context) {
	for ctx.Err() == nil {
		lc.nc.SetReadDeadline(time.Now().Add(lockdownIdle))
		var req map[string]any
		if err := lockdown.ReadPlist(lc.rw, &req); err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				lc.d.Log.Debug("lockdown: reading request", "err", err)
			}
			return
		}
		for _, reply := range lc.handle(req) {
			lc.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if err := lockdown.WritePlist(lc.rw, reply); err != nil {
				lc.d.Log.Debug("lockdown: writing reply", "err", err)
				return
			}
		}
	}
}

// handle answers one request with the replies to send, in order.
func (lc *lockdownConn) handle(req map[string]any) []map[string]any {
	verb, _ := req["Request"].(string)
	reply := map[string]any{"Request": verb}
	switch verb {
	case "RSDCheckin":
		if l, ok := req["Label"].(string); ok {
			reply["Label"] = l
		}
		return []map[string]any{reply, {"Request": "StartService"}}
	case "QueryType":
		reply["Type"] = LockdownType
	case "GetValue":
		domain, _ := req["Domain"].(string)
		key, _ := req["Key"].(string)
		if domain != "" {
			reply["Domain"] = domain
		}
		if key != "" {
			reply["Key"] = key
		}
		v, err := lc.d.LockdownValue(domain, key, lc.inSession)
		var le *profile.LockdownError
		switch {
		case errors.As(err, &le):
			reply["Error"] = le.Code
		case err != nil:
			reply["Error"] = "InvalidResponse"
		default:
			reply["Value"] = v
		}
	default:
		reply["Error"] = ErrUnknownRequest
	}
	return []map[string]any{reply}
}
