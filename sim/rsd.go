package sim

import (
	"context"
	"fmt"
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
}

// RSD is a running RSD endpoint and one listener per service it lists.
type RSD struct {
	addr      net.Addr
	handshake *xpc.Dict
	ports     map[string]int
	names     []string
	acc       *accept.Group
}

// Addr is the RSD endpoint's address.
func (r *RSD) Addr() net.Addr { return r.addr }

// Port is the port a service listens on in this session.
func (r *RSD) Port(service string) (int, bool) { p, ok := r.ports[service]; return p, ok }

// Handshake is the dictionary every RSD client receives.
func (r *RSD) Handshake() *xpc.Dict { return r.handshake }

// Close stops the endpoint, its services and their connections.
func (r *RSD) Close() { r.acc.Close() }

// ServeRSD serves the RSD endpoint on port and every listed service on a fresh port.
func (d *Device) ServeRSD(ctx context.Context, listen Listen, port int, opts RSDOptions) (*RSD, error) {
	r := &RSD{ports: map[string]int{}, acc: accept.New(ctx, d.Log)}
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
		r.acc.Serve(s.Name, ln, d.serviceHandler(s, opts))
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
	r.acc.Serve("rsd", ln, func(ctx context.Context, nc net.Conn) { d.serveRSDConn(ctx, nc, r.handshake, opts) })
	d.Log.Info("rsd serving", "addr", r.addr.String(), "services", len(services))
	return r, nil
}

// serveRSDConn runs one RSD connection: setup, Handshake, then hold it open as the device does.
func (d *Device) serveRSDConn(ctx context.Context, nc net.Conn, handshake *xpc.Dict, opts RSDOptions) {
	c, err := rsd.Server(ctx, nc, rsd.Options{})
	if err != nil {
		d.Log.Debug("rsd connection setup failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	defer c.Close()
	go discard(ctx, c)
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = rsd.ServeHandshake(hctx, c, handshake, !opts.KeepRootStream)
	cancel()
	if err != nil {
		d.Log.Debug("rsd handshake not delivered", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
}

// discard reads and drops a connection's incoming messages until it ends.
func discard(ctx context.Context, c *rsd.Conn) {
	for {
		if _, err := c.Receive(ctx); err != nil {
			return
		}
	}
}

// serviceHandler picks what serves a listed service.
func (d *Device) serviceHandler(s profile.Service, opts RSDOptions) accept.Handler {
	switch s.Name {
	case "com.apple.mobile.lockdown.remote.trusted":
		return func(ctx context.Context, nc net.Conn) { d.serveRemoteLockdown(ctx, nc, true) }
	case "com.apple.mobile.lockdown.remote.untrusted":
		return func(ctx context.Context, nc net.Conn) { d.serveRemoteLockdown(ctx, nc, false) }
	}
	if h, ok := xpcServices[s.Name]; ok {
		return func(ctx context.Context, nc net.Conn) { d.serveXPC(ctx, nc, h) }
	}
	return func(ctx context.Context, nc net.Conn) {
		d.Log.Debug("service not simulated; closing", "service", s.Name)
	}
}
