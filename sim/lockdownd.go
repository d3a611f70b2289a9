package sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/sim/profile"
)

// LockdownType is lockdownd's QueryType answer (lockdown.md §4).
const LockdownType = lockdown.QueryTypeNormal

// ErrUnknownRequest is the Error string for a verb the simulator does not implement.
// UNCONFIRMED: no source gives the real device's string for an unknown Request.
const ErrUnknownRequest = "InvalidRequest"

// StopSessionResult is the Result the StopSession reply carries. pymobiledevice3 requires
// Result "Success", libimobiledevice accepts the reply with or without it; whether current iOS
// sends it is UNCONFIRMED (lockdown.md §4).
const StopSessionResult = "Success"

// StartServiceWithoutSession is the Error for StartService outside a session.
// UNCONFIRMED: the real device's answer; SessionInactive is what pymobiledevice3 handles.
const StartServiceWithoutSession = lockdown.CodeSessionInactive

// lockdownIdle bounds how long a lockdown connection may sit without a request.
const lockdownIdle = 5 * time.Minute

// lockdownIO bounds one write, a TLS handshake, or the wait for close_notify after StopSession.
const lockdownIO = 30 * time.Second

// lockdownConn is one lockdown conversation with the simulated lockdownd.
type lockdownConn struct {
	d         *Device
	rw        io.ReadWriter // nc, or the session's TLS
	nc        net.Conn
	inSession bool

	// usb is set on lockdownd reached through usbmuxd (port 62078): Pair, sessions with TLS
	// and StartService are available. Remote lockdown over RSD has none of them.
	usb       bool
	st        *lockdownState
	sessionID string
	hostID    string
	tls       *tls.Conn
}

// serveRemoteLockdown serves com.apple.mobile.lockdown.remote.{trusted,untrusted} (rsd.md §4.1):
// RSDCheckin, then requests in the clear; trusted answers with the in-session dictionary.
func (d *Device) serveRemoteLockdown(ctx context.Context, nc net.Conn, trusted bool) {
	lc := &lockdownConn{d: d, rw: nc, nc: nc, inSession: trusted}
	lc.serve(ctx)
}

// serveUSBLockdown serves lockdownd on a usbmux Connect to port 62078 (lockdown.md §4):
// QueryType, GetValue, Pair, StartSession with TLS, StopSession, StartService.
func (d *Device) serveUSBLockdown(ctx context.Context, nc net.Conn) {
	lc := &lockdownConn{d: d, rw: nc, nc: nc, usb: true, st: d.lockdownd()}
	lc.serve(ctx)
}

// next runs after a request's replies were written; false ends the connection.
type next func(ctx context.Context) bool

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
		verb, _ := req["Request"].(string)
		lc.d.Log.Debug("lockdown: request", "verb", verb, "session", lc.sessionID != "")
		replies, then := lc.handle(req)
		for _, reply := range replies {
			lc.nc.SetWriteDeadline(time.Now().Add(lockdownIO))
			if err := lockdown.WritePlist(lc.rw, reply); err != nil {
				lc.d.Log.Debug("lockdown: writing reply", "err", err)
				return
			}
		}
		if then != nil && !then(ctx) {
			return
		}
	}
}

// handle answers one request with the replies to send, in order, and what to do after them.
func (lc *lockdownConn) handle(req map[string]any) ([]map[string]any, next) {
	verb, _ := req["Request"].(string)
	reply := map[string]any{"Request": verb}
	one := func() ([]map[string]any, next) { return []map[string]any{reply}, nil }
	switch verb {
	case "RSDCheckin":
		if lc.usb {
			break
		}
		if l, ok := req["Label"].(string); ok {
			reply["Label"] = l
		}
		return []map[string]any{reply, {"Request": "StartService"}}, nil
	case "QueryType":
		reply["Type"] = LockdownType
		return one()
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
		return one()
	}
	if lc.usb {
		switch verb {
		case "Pair":
			lc.pair(req, reply)
			return one()
		case "ValidatePair":
			lc.validatePair(req, reply)
			return one()
		case "Unpair":
			lc.unpair(req, reply)
			return one()
		case "StartSession":
			return lc.startSession(req, reply)
		case "StopSession":
			return lc.stopSession(req, reply)
		case "StartService":
			lc.startService(req, reply)
			return one()
		case "Goodbye":
			reply["Result"] = "Success"
			return []map[string]any{reply}, func(context.Context) bool { return false }
		}
	}
	reply["Error"] = ErrUnknownRequest
	return one()
}

// startSession checks HostID, answers with a session ID and EnableSessionSSL, then runs the
// device side of TLS: the client must present the paired host's HostCertificate.
func (lc *lockdownConn) startSession(req, reply map[string]any) ([]map[string]any, next) {
	hostID, _ := req["HostID"].(string)
	switch {
	case lc.sessionID != "":
		reply["Error"] = lockdown.CodeSessionActive
		return []map[string]any{reply}, nil
	case hostID == "":
		reply["Error"] = lockdown.CodeMissingHostID
		return []map[string]any{reply}, nil
	}
	host, ok := lc.st.host(hostID)
	if !ok {
		reply["Error"] = lockdown.CodeInvalidHostID
		return []map[string]any{reply}, nil
	}
	id := pairrecord.NewUUID()
	reply["SessionID"] = id
	reply["EnableSessionSSL"] = true
	return []map[string]any{reply}, func(ctx context.Context) bool {
		cfg, err := lc.d.serverTLSConfig(func(leaf []byte) error {
			if !host.owns(leaf) {
				return fmt.Errorf("sim: session TLS: client certificate is not one of HostID %s's certificates", hostID)
			}
			return nil
		})
		if err != nil {
			lc.d.Log.Warn("lockdown: session TLS", "err", err)
			return false
		}
		tc := tls.Server(lockdown.TLSRecordConn(lc.nc), cfg)
		lc.nc.SetDeadline(time.Now().Add(lockdownIO))
		err = tc.HandshakeContext(ctx)
		lc.nc.SetDeadline(time.Time{})
		if err != nil {
			lc.d.Log.Debug("lockdown: session TLS handshake failed", "err", err)
			return false
		}
		lc.d.Log.Debug("lockdown: session TLS up", "version", tls.VersionName(tc.ConnectionState().Version),
			"cipher", tls.CipherSuiteName(tc.ConnectionState().CipherSuite))
		lc.tls, lc.rw = tc, tc
		lc.sessionID, lc.hostID, lc.inSession = id, hostID, true
		return true
	}
}

// stopSession ends the session. The reply goes out over TLS; then the host's close_notify is
// read and the conversation continues in the clear (lockdown.md §4).
func (lc *lockdownConn) stopSession(req, reply map[string]any) ([]map[string]any, next) {
	id, _ := req["SessionID"].(string)
	switch {
	case lc.sessionID == "":
		reply["Error"] = lockdown.CodeSessionInactive
		return []map[string]any{reply}, nil
	case id == "":
		reply["Error"] = lockdown.CodeMissingSessionID
		return []map[string]any{reply}, nil
	case id != lc.sessionID:
		reply["Error"] = lockdown.CodeInvalidSessionID
		return []map[string]any{reply}, nil
	}
	reply["Result"] = StopSessionResult
	return []map[string]any{reply}, func(ctx context.Context) bool {
		lc.sessionID, lc.hostID, lc.inSession = "", "", false
		tc := lc.tls
		lc.tls, lc.rw = nil, lc.nc
		if tc == nil {
			return true
		}
		// The TLS layer was built on a TLSRecordConn: it reads no further than the alert, so
		// the clear request that follows stays in the socket.
		lc.nc.SetReadDeadline(time.Now().Add(lockdownIO))
		var b [1]byte
		n, err := tc.Read(b[:])
		lc.nc.SetReadDeadline(time.Time{})
		if n > 0 || !errors.Is(err, io.EOF) {
			lc.d.Log.Debug("lockdown: no close_notify after StopSession", "err", err)
			return false
		}
		lc.d.Log.Debug("lockdown: session closed; back in the clear")
		return true
	}
}

// startService hands out a port for a registered service (services.go).
func (lc *lockdownConn) startService(req, reply map[string]any) {
	name, _ := req["Service"].(string)
	if name != "" {
		reply["Service"] = name
	}
	if name == "" {
		reply["Error"] = lockdown.CodeMissingService
		return
	}
	if lc.sessionID == "" {
		reply["Error"] = StartServiceWithoutSession
		return
	}
	svc, ok := lockdownServices[name]
	if !ok {
		reply["Error"] = lockdown.CodeInvalidService
		return
	}
	port, err := lc.st.startService(name, svc)
	if err != nil {
		reply["Error"] = lockdown.CodeServiceLimit
		return
	}
	reply["Port"] = port
	reply["EnableServiceSSL"] = svc.SSL
}

// serveStartedService serves a connection that arrived on a started service's port: device
// side TLS first when the service asked for it (any paired host's certificate is accepted),
// then the service itself.
func (d *Device) serveStartedService(ctx context.Context, nc net.Conn, s startedService) {
	conn := nc
	if s.svc.SSL {
		st := d.lockdownd()
		cfg, err := d.serverTLSConfig(func(leaf []byte) error {
			if !st.knownHostCert(leaf) {
				return errors.New("sim: service TLS: client certificate is not a paired host's")
			}
			return nil
		})
		if err != nil {
			d.Log.Warn("lockdown: service TLS", "service", s.name, "err", err)
			return
		}
		// The device side of a tunnel holds its batches of records too (see cork).
		var under net.Conn = cork.New(nc)
		handshakeOnly := lockdown.HandshakeOnly(s.name)
		if handshakeOnly {
			cfg.MaxVersion = tls.VersionTLS12
			under = lockdown.TLSRecordConn(nc)
		}
		tc := tls.Server(under, cfg)
		nc.SetDeadline(time.Now().Add(lockdownIO))
		err = tc.HandshakeContext(ctx)
		nc.SetDeadline(time.Time{})
		if err != nil {
			d.Log.Debug("lockdown: service TLS handshake failed", "service", s.name, "err", err)
			return
		}
		if !handshakeOnly {
			conn = tc
		}
	}
	s.svc.Serve(d, ctx, conn)
}
