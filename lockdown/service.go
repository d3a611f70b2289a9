package lockdown

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/pairrecord"
)

// handshakeOnly are the services whose TLS is handshake-only: after the handshake the
// traffic continues in the clear (lockdown.md §4.2).
var handshakeOnly = map[string]bool{
	"com.apple.instruments.remoteserver":                 true,
	"com.apple.accessibility.axAuditDaemon.remoteserver": true,
	"com.apple.testmanagerd.lockdown":                    true,
	"com.apple.debugserver":                              true,
}

// HandshakeOnly reports whether a service's TLS ends after the handshake (lockdown.md §4.2).
func HandshakeOnly(service string) bool { return handshakeOnly[service] }

// Lockdown connects to the device's lockdownd and returns a client for it.
func (m *Mux) Lockdown(ctx context.Context, deviceID uint32) (*Client, error) {
	nc, err := m.Connect(ctx, deviceID, LockdownPort)
	if err != nil {
		return nil, err
	}
	c := NewClient(nc)
	if m.Client.ProgName != "" {
		c.Label = m.Client.ProgName
	}
	return c, nil
}

// ConnectService connects to a service lockdownd started and, when svc.SSL, runs TLS as the
// host with the pair record's certificate. For the handshake-only services the returned
// connection is the clear socket after the handshake; otherwise it is the TLS connection.
func (m *Mux) ConnectService(ctx context.Context, deviceID uint32, svc Service, rec *pairrecord.Record) (net.Conn, error) {
	nc, err := m.Connect(ctx, deviceID, svc.Port)
	if err != nil {
		return nil, fmt.Errorf("lockdown: service %s: %w", svc.Name, err)
	}
	if !svc.SSL {
		return nc, nil
	}
	cfg, err := ClientTLSConfig(rec)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("lockdown: service %s: %w", svc.Name, err)
	}
	// Under the TLS of a service that stays in TLS, a cork.Conn lets a batch of records leave
	// in one write (the tunnel pump holds its batches; every other write goes straight through).
	var under net.Conn = cork.New(nc)
	if HandshakeOnly(svc.Name) {
		// The clear stream must start right after the handshake: TLS 1.2 (no post-handshake
		// tickets) and no read-ahead.
		cfg.MaxVersion = tls.VersionTLS12
		under = TLSRecordConn(nc)
	}
	release := bindDeadline(ctx, nc, m.timeout())
	tc := tls.Client(under, cfg)
	err = tc.HandshakeContext(ctx)
	release()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("lockdown: service %s: TLS handshake: %w", svc.Name, ctxErr(ctx, err))
	}
	if HandshakeOnly(svc.Name) {
		return nc, nil
	}
	return tc, nil
}

// StartService runs the whole host sequence for one service (lockdown.md §4.3): connect to
// lockdownd, StartSession with rec, StartService, then connect to the service port with TLS
// when asked. The lockdown connection is closed before returning.
func (m *Mux) StartService(ctx context.Context, deviceID uint32, rec *pairrecord.Record, name string) (net.Conn, Service, error) {
	c, err := m.Lockdown(ctx, deviceID)
	if err != nil {
		return nil, Service{}, err
	}
	defer c.Close()
	if err := c.StartSession(ctx, rec); err != nil {
		return nil, Service{}, err
	}
	svc, err := c.StartService(ctx, name, nil)
	if err != nil {
		return nil, Service{}, err
	}
	nc, err := m.ConnectService(ctx, deviceID, svc, rec)
	if err != nil {
		return nil, svc, err
	}
	return nc, svc, nil
}

// Pair pairs with a device through usbmuxd as libimobiledevice's idevicepair does
// (device-profile.md §2.5): SystemBUID from ReadBUID (unless given), a fresh record, lockdown
// Pair (waiting for the Trust dialog until ctx ends), then SavePairRecord so usbmuxd and every
// other tool on the host share the record.
func (m *Mux) Pair(ctx context.Context, dev Device, o PairOptions) (*pairrecord.Record, error) {
	if o.SystemBUID == "" {
		buid, err := m.ReadBUID(ctx)
		if err != nil {
			return nil, err
		}
		o.SystemBUID = buid
	}
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rec, err := c.Pair(ctx, o)
	if err != nil {
		return nil, err
	}
	if rec.UDID == "" {
		rec.UDID = dev.UDID
	}
	if err := m.SavePairRecord(ctx, dev.UDID, dev.ID, rec); err != nil {
		return rec, fmt.Errorf("lockdown: Pair: paired, but saving the record failed: %w", err)
	}
	return rec, nil
}
