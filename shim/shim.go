// Package shim serves a device's RSD endpoint and services on local addresses and relays them
// to the device through its tunnel, rewriting only the service ports in the RSD handshake.
package shim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/iosmux/iosmux/internal/accept"
	"github.com/iosmux/iosmux/internal/lograte"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// DialTimeout bounds each upstream dial through the tunnel.
const DialTimeout = 10 * time.Second

// Bounds on what local RSD clients can make the shim hold (docs/limits.md): the RSD port
// carries only setup and Handshakes, so a client's messages are small.
const (
	// MaxRSDClients bounds local RSD connections at once (each holds one to the device).
	MaxRSDClients = 64
	// MaxClientMessage bounds one message from a local RSD client and its unfinished ones.
	MaxClientMessage = 256 << 10
	// MaxServices bounds the services a device's handshake may make the shim listen for.
	MaxServices = 512
)

// ClientSetupTimeout bounds how long a local RSD client may take to open both channels; the
// device is dialled only after that, so an idle client pins nothing upstream.
const ClientSetupTimeout = 10 * time.Second

// Dialer opens a connection to the device, normally through its tunnel.
type Dialer func(ctx context.Context, network, address string) (net.Conn, error)

// ErrNoUpstream means the device's tunnel is down.
var ErrNoUpstream = errors.New("shim: device tunnel is down")

// upstream is where the device's services are reachable right now.
type upstream struct {
	dial     Dialer
	hostUUID xpc.UUID // what the device sees of every client
	host     string   // device address inside the tunnel
	rsdPort  int
	ports    map[string]int // service name -> device port, from the last handshake
}

// Shim is one device's set of local endpoints.
type Shim struct {
	host     string
	hostUUID xpc.UUID
	log      *slog.Logger
	// setupTimeout is ClientSetupTimeout (shorter in tests).
	setupTimeout time.Duration

	noisy *lograte.Limiter // repeated upstream failures

	ctx   context.Context
	conns *accept.Group // listeners and both sides of every relayed connection

	mu       sync.Mutex
	up       *upstream
	rsdLn    net.Listener
	services map[string]net.Listener // service name -> local listener, stable for the shim's life
}

// New listens for the RSD endpoint on host (a loopback address) and returns the shim, which
// presents hostUUID in its host Handshake to the device for every client.
func New(ctx context.Context, host string, hostUUID xpc.UUID, log *slog.Logger) (*Shim, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("shim: listen for rsd: %w", err)
	}
	g := accept.New(ctx, log)
	s := &Shim{host: host, hostUUID: hostUUID, log: log, setupTimeout: ClientSetupTimeout,
		noisy: lograte.New(log, accept.LogWindow, accept.LogBurst), ctx: g.Context(), conns: g, rsdLn: ln, services: map[string]net.Listener{}}
	g.ServeN("rsd shim", ln, MaxRSDClients, s.serveRSD)
	return s, nil
}

// RSDAddr is the local RSD endpoint to advertise.
func (s *Shim) RSDAddr() *net.TCPAddr { return s.rsdLn.Addr().(*net.TCPAddr) }

// ServicePort is the local port of a service, once the device has listed it.
func (s *Shim) ServicePort(name string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ln, ok := s.services[name]
	if !ok {
		return 0, false
	}
	return ln.Addr().(*net.TCPAddr).Port, true
}

// SetUpstream points the shim at a (re)built tunnel: it reads the device's RSD handshake and
// opens a local listener for every service not seen before.
func (s *Shim) SetUpstream(ctx context.Context, dial Dialer, deviceAddr string, rsdPort int) (*rsd.Handshake, error) {
	up := &upstream{dial: dial, hostUUID: s.hostUUID, host: deviceAddr, rsdPort: rsdPort, ports: map[string]int{}}
	c, h, err := up.dialRSD(ctx)
	if err != nil {
		return nil, err
	}
	c.Close()
	for _, svc := range h.Services {
		up.ports[svc.Name] = svc.Port
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, fmt.Errorf("shim: closed")
	}
	fresh := 0
	for _, svc := range h.Services {
		if _, ok := s.services[svc.Name]; !ok {
			fresh++
		}
	}
	if len(s.services)+fresh > MaxServices {
		return nil, fmt.Errorf("shim: device would have %d service listeners, over the limit of %d", len(s.services)+fresh, MaxServices)
	}
	for _, svc := range h.Services {
		if _, ok := s.services[svc.Name]; ok {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(s.host, "0"))
		if err != nil {
			return nil, fmt.Errorf("shim: listen for %s: %w", svc.Name, err)
		}
		s.services[svc.Name] = ln
		name := svc.Name
		s.conns.Serve(name+" shim", ln, func(_ context.Context, nc net.Conn) { s.relayService(name, nc) })
	}
	s.up = up
	return h, nil
}

// ClearUpstream marks the tunnel down and drops the relayed connections.
func (s *Shim) ClearUpstream() {
	s.mu.Lock()
	s.up = nil
	s.mu.Unlock()
	s.conns.CloseConns()
}

// Close stops every listener and connection.
func (s *Shim) Close() {
	s.ClearUpstream()
	s.conns.Close()
}

func (s *Shim) current() (*upstream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up == nil {
		return nil, ErrNoUpstream
	}
	return s.up, nil
}

// dialPort opens a connection to one of the device's ports.
func (u *upstream) dialPort(ctx context.Context, port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	return u.dial(ctx, "tcp", net.JoinHostPort(u.host, strconv.Itoa(port)))
}

// dialRSD opens an RSD connection to the device as a host does: setup, iosmux's host
// Handshake, then the device's.
func (u *upstream) dialRSD(ctx context.Context) (*rsd.Conn, *rsd.Handshake, error) {
	nc, err := u.dialPort(ctx, u.rsdPort)
	if err != nil {
		return nil, nil, fmt.Errorf("shim: dial device rsd: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	c, err := rsd.Client(ctx, nc, rsd.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("shim: device rsd: %w", err)
	}
	h, err := rsd.ReadHandshake(ctx, c, &u.hostUUID)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("shim: device rsd: %w", err)
	}
	return c, h, nil
}

// relayService copies bytes between a local client and the device's service, unchanged.
func (s *Shim) relayService(name string, nc net.Conn) {
	up, err := s.current()
	if err != nil {
		s.log.Debug("shim: refusing connection", "service", name, "err", err)
		return
	}
	port, ok := up.ports[name]
	if !ok {
		s.log.Debug("shim: service not offered by this tunnel", "service", name)
		return
	}
	dc, err := up.dialPort(s.ctx, port)
	if err != nil {
		s.noisy.Log(slog.LevelWarn, "dial "+name, "shim: dial device service failed", "service", name, "err", err)
		return
	}
	if !s.conns.Track(dc) {
		dc.Close()
		return
	}
	defer s.conns.Untrack(dc)
	pipe(nc, dc)
}

// rewriteHandshake copies the device handshake with each listed service's Port replaced by
// the shim's local port; order, types and every other byte stay as the device sent them.
func (s *Shim) rewriteHandshake(h *rsd.Handshake) *xpc.Dict {
	out := &xpc.Dict{Entries: make([]xpc.Entry, len(h.Raw.Entries))}
	for i, e := range h.Raw.Entries {
		out.Entries[i] = e
		services, ok := e.Value.(*xpc.Dict)
		if e.Key != "Services" || !ok {
			continue
		}
		ns := &xpc.Dict{Entries: make([]xpc.Entry, len(services.Entries))}
		for j, se := range services.Entries {
			ns.Entries[j] = se
			entry, ok := se.Value.(*xpc.Dict)
			if !ok {
				continue
			}
			if p, ok := s.ServicePort(se.Key); ok {
				ne := &xpc.Dict{Entries: append([]xpc.Entry(nil), entry.Entries...)}
				ne.Set("Port", strconv.Itoa(p))
				ns.Entries[j].Value = ne
			}
		}
		out.Entries[i].Value = ns
	}
	return out
}

// Failing lists the shim's endpoints whose accepts are failing now.
func (s *Shim) Failing() []accept.Failure { return s.conns.Failing() }

// serveRSD answers a local RSD client with the device's handshake (ports rewritten) and then
// relays messages both ways on the same streams with the same ids. The device is dialled
// once the client has set up both channels, within ClientSetupTimeout.
func (s *Shim) serveRSD(_ context.Context, nc net.Conn) {
	remote := nc.RemoteAddr().String()
	up, err := s.current()
	if err != nil {
		s.log.Debug("shim: refusing rsd connection", "remote", remote, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	client, err := rsd.Server(ctx, nc, rsd.Options{MaxMessageSize: MaxClientMessage, MaxPartialBytes: MaxClientMessage})
	if err != nil {
		s.log.Debug("shim: rsd client setup failed", "remote", remote, "err", err)
		return
	}
	defer client.Close()
	select {
	case <-client.Ready():
	case <-client.Done():
		s.log.Debug("shim: rsd client left during setup", "remote", remote, "err", client.Err())
		return
	case <-time.After(s.setupTimeout):
		s.log.Debug("shim: rsd client did not open both channels in time; dropped", "remote", remote)
		return
	case <-ctx.Done():
		return
	}
	dev, h, err := up.dialRSD(ctx)
	if err != nil {
		s.noisy.Log(slog.LevelWarn, "rsd", "shim: rsd upstream failed", "err", err)
		return
	}
	defer dev.Close()
	if err := rsd.ServeHandshake(ctx, client, s.rewriteHandshake(h), true); err != nil {
		s.log.Debug("shim: rsd handshake to client failed", "remote", remote, "err", err)
		return
	}
	go s.forward(ctx, client, dev, true)
	s.forward(ctx, dev, client, false)
}

// forward relays every MSG received on from to the same stream of to; each side's channel
// setup (HEADER, PING) was already exchanged by its own connection. A client's own host
// Handshake is never passed on: the device sees only iosmux's.
func (s *Shim) forward(ctx context.Context, from, to *rsd.Conn, fromClient bool) {
	defer to.Close()
	for {
		in, err := from.Receive(ctx)
		if err != nil {
			return
		}
		if in.Msg.Flags.Type() != xpc.TypeMsg {
			continue
		}
		if fromClient && isHandshake(in.Msg) {
			s.log.Debug("shim: kept a client's host Handshake from the device", "remote", from.RemoteAddr().String())
			continue
		}
		if err := to.Send(ctx, in.Stream, in.Msg); err != nil {
			return
		}
	}
}

// isHandshake reports whether m carries an RSD Handshake dictionary.
func isHandshake(m *xpc.Message) bool {
	d, ok := m.Body.(*xpc.Dict)
	if !ok {
		return false
	}
	t, _ := d.String("MessageType")
	return t == "Handshake"
}
