package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/iosmux/iosmux/internal/accept"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// MessagingProtocolVersion is the device's handshake value; 5 was seen on iOS 18 (rsd.md §3.1).
// Its XPC type on the device side is UNCONFIRMED; uint64 matches the host side.
const MessagingProtocolVersion uint64 = 5

// Listen opens a listener on a port of the simulated device's address (0 picks a free port).
type Listen func(port int) (net.Listener, error)

// TCPListen listens on host with the host's TCP stack.
func TCPListen(host string) Listen {
	return func(port int) (net.Listener, error) {
		return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	}
}

// portOf returns the port of a listener address.
func portOf(a net.Addr) (int, error) {
	_, ps, err := net.SplitHostPort(a.String())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(ps)
}

// RSDOptions tune the simulated RSD endpoint.
type RSDOptions struct {
	// KeepRootStream skips the device's RST_STREAM(1) after the Handshake.
	KeepRootStream bool
	// Untrusted serves the untrusted inventory (USB port 58783) instead of the trusted one.
	Untrusted bool
	// MixedHosts turns off the one-host rule (see hostRule): RSD peers with different host
	// UUIDs may then share the device's services.
	MixedHosts bool
}

// RSD is a running RSD endpoint and one listener per service it lists.
type RSD struct {
	addr      net.Addr
	handshake *xpc.Dict
	ports     map[string]int
	names     []string
	acc       *accept.Group // the RSD listener and its connections
	svc       *accept.Group // the service listeners and their connections
	hosts     hostRule
}

// Addr is the RSD endpoint's address.
func (r *RSD) Addr() net.Addr { return r.addr }

// Port is the port a service listens on in this session.
func (r *RSD) Port(service string) (int, bool) { p, ok := r.ports[service]; return p, ok }

// Handshake is the dictionary every RSD client receives.
func (r *RSD) Handshake() *xpc.Dict { return r.handshake }

// Close stops the endpoint, its services and their connections.
func (r *RSD) Close() {
	r.acc.Close()
	r.svc.Close()
}

// ServeRSD serves the RSD endpoint on port and every listed service on a fresh port.
func (d *Device) ServeRSD(ctx context.Context, listen Listen, port int, opts RSDOptions) (*RSD, error) {
	r := &RSD{ports: map[string]int{}, acc: accept.New(ctx, d.Log), svc: accept.New(ctx, d.Log)}
	r.hosts.init(opts.MixedHosts)
	services := d.Services()
	if opts.Untrusted {
		services = d.UntrustedServices()
	}
	entries := &xpc.Dict{}
	for _, s := range services {
		ln, err := listen(0)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("sim: rsd: listen for %s: %w", s.Name, err)
		}
		p, err := portOf(ln.Addr())
		if err != nil {
			ln.Close()
			r.Close()
			return nil, fmt.Errorf("sim: rsd: %s: %w", s.Name, err)
		}
		r.ports[s.Name] = p
		r.names = append(r.names, s.Name)
		entries.Entries = append(entries.Entries, xpc.Entry{Key: s.Name, Value: toXPC(s.Entry(p))})
		r.svc.Serve(s.Name, ln, d.serviceHandler(s, opts))
	}
	r.handshake = xpc.NewDict(
		"MessageType", "Handshake",
		"MessagingProtocolVersion", MessagingProtocolVersion,
		"Properties", toXPC(d.RSDProperties()),
		"Services", entries,
		"UUID", d.UUID,
	)
	ln, err := listen(port)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("sim: rsd: listen: %w", err)
	}
	r.addr = ln.Addr()
	r.acc.Serve("rsd", ln, func(ctx context.Context, nc net.Conn) { d.serveRSDConn(ctx, nc, r, opts) })
	d.Log.Info("rsd serving", "addr", r.addr.String(), "services", len(services))
	return r, nil
}

// serveRSDConn runs one RSD connection: setup, Handshake, then hold it open as the device
// does, reading what the host sends (its own Handshake among it) until it hangs up.
func (d *Device) serveRSDConn(ctx context.Context, nc net.Conn, r *RSD, opts RSDOptions) {
	remote := nc.RemoteAddr().String()
	c, err := rsd.Server(ctx, nc, rsd.Options{})
	if err != nil {
		d.logDrop("rsd", remote, fmt.Errorf("setup: %w", err))
		return
	}
	defer c.Close()
	defer r.hosts.leave(c)
	go d.readHost(ctx, c, r, remote)
	hctx, cancel := context.WithTimeout(ctx, rsdHandshakeTimeout)
	err = rsd.ServeHandshake(hctx, c, r.handshake, !opts.KeepRootStream)
	cancel()
	if err != nil {
		d.logDrop("rsd", remote, fmt.Errorf("handshake not delivered: %w", err))
		return
	}
	select {
	case <-c.Done():
		d.logDrop("rsd", remote, c.Err())
	case <-ctx.Done():
	}
}

// rsdHandshakeTimeout bounds how long a client may take to open both channels.
const rsdHandshakeTimeout = 30 * time.Second

// readHost takes the host's messages on an RSD connection; a host Handshake names the peer.
func (d *Device) readHost(ctx context.Context, c *rsd.Conn, r *RSD, remote string) {
	for {
		in, err := c.Receive(ctx)
		if err != nil {
			return
		}
		body, _ := in.Msg.Body.(*xpc.Dict)
		if t, _ := body.String("MessageType"); t != "Handshake" {
			continue
		}
		v, _ := body.Get("UUID")
		u, ok := v.(xpc.UUID)
		if !ok {
			d.Log.Warn("rsd: host Handshake without a UUID", "remote", remote)
			continue
		}
		if others := r.hosts.present(c, u); len(others) > 0 {
			d.Log.Warn("rsd: a second RSD peer presents a different host UUID; closing every service",
				"remote", remote, "uuid", u.String(), "previous", others[0].String())
			r.svc.CloseConns()
		}
	}
}

// logDrop logs why a connection of the device ended: a clean end at debug level, anything
// else at warn level with its cause.
func (d *Device) logDrop(service, remote string, err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, rsd.ErrClosed) || errors.Is(err, context.Canceled) {
		d.Log.Debug("connection ended", "service", service, "remote", remote, "err", err)
		return
	}
	d.noisy.Log(slog.LevelWarn, "drop "+service, "connection dropped", "service", service, "remote", remote, "err", err)
}

// serviceHandler picks what serves a listed service.
func (d *Device) serviceHandler(s profile.Service, opts RSDOptions) accept.Handler {
	switch s.Name {
	case "com.apple.mobile.lockdown.remote.trusted":
		return func(ctx context.Context, nc net.Conn) { d.serveRemoteLockdown(ctx, nc, true) }
	case "com.apple.mobile.lockdown.remote.untrusted":
		return func(ctx context.Context, nc net.Conn) { d.serveRemoteLockdown(ctx, nc, false) }
	case TunnelServiceName:
		return func(ctx context.Context, nc net.Conn) { d.serveTunnelService(ctx, nc) }
	}
	if h, ok := xpcServices[s.Name]; ok {
		return func(ctx context.Context, nc net.Conn) { d.serveXPC(ctx, nc, s.Name, h) }
	}
	return func(ctx context.Context, nc net.Conn) {
		d.Log.Debug("service not simulated; closing", "service", s.Name)
	}
}
