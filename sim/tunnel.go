package sim

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/iosmux/iosmux/tunnel"
)

// CoreDeviceProxyService is the lockdown service that carries the CoreDevice tunnel on
// iOS 17.4+ (tunnel.md §7, path D). Its connection is TLS with the pair record's identity.
const CoreDeviceProxyService = "com.apple.internal.devicecompute.CoreDeviceProxy"

// DefaultTunnelMTU is the largest MTU the simulated device grants. Real devices grant the
// 16000 that pymobiledevice3 and idevice request (tunnel.md §5, §6); their own upper limit is
// UNCONFIRMED.
const DefaultTunnelMTU = 16000

// DefaultTunnelHandshakeTimeout bounds the wait for the host's CDTunnel request.
const DefaultTunnelHandshakeTimeout = 15 * time.Second

func init() {
	lockdownServices[CoreDeviceProxyService] = lockdownService{SSL: true, Serve: serveCoreDeviceProxy}
}

func serveCoreDeviceProxy(d *Device, ctx context.Context, nc net.Conn) {
	if err := d.ServeTunnel(ctx, nc, d.TunnelOptions()); err != nil {
		d.Log.Debug("tunnel ended", "service", CoreDeviceProxyService, "err", err)
	}
}

// TunnelOptions tune the device's side of a tunnel.
type TunnelOptions struct {
	// MaxMTU is the device's own limit: it grants min(requested, MaxMTU), and never less than
	// IPv6's 1280 (what a real device does with a smaller request is UNCONFIRMED).
	// 0 means DefaultTunnelMTU.
	MaxMTU int
	// DropAbove, when > 0, silently drops host→device packets longer than this many bytes,
	// whatever MTU was granted. tunnel.CoreDeviceProxyDropAbove (8192) reproduces what
	// pymobiledevice3 measured on USB CoreDeviceProxy (tunnel.md §6). 0 delivers everything.
	DropAbove int
	// RSDPort is the RSD port inside the tunnel; 0 picks an ephemeral one (as the device does).
	RSDPort uint16
	// RSD tunes the RSD endpoint served inside the tunnel (the trusted inventory by default).
	RSD RSDOptions
	// HandshakeTimeout bounds the wait for the request; 0 means DefaultTunnelHandshakeTimeout.
	HandshakeTimeout time.Duration
	// OnStart, if set, is called once the tunnel runs, before ServeTunnel waits for its end.
	OnStart func(*TunnelSession)
	// OnePacketPerWrite makes the device send each packet to the host with its own write (its
	// own TLS record), as pymobiledevice3 describes CoreDeviceProxy (tunnel.md §6): the host's
	// reader then gets at most one packet per read, and must still batch nothing it has not got.
	OnePacketPerWrite bool
	// RefuseQUIC makes createListener refuse transportProtocolType "quic", as iOS 18.2 and later
	// do (tunnel.md §1, §4). How a real device refuses (an error reply, or a listener that never
	// answers) is UNCONFIRMED; the simulator replies with an error.
	RefuseQUIC bool
	// RefuseTCP makes createListener refuse transportProtocolType "tcp", as a device from before
	// TCP tunnels would (tunnel.md §1: the first iOS 17 version offering TCP is UNCONFIRMED).
	RefuseTCP bool
	// Stall makes the device misbehave: it reads the CDTunnel request and never answers,
	// until the host hangs up or ctx ends (a fault for the host's bounded waits).
	Stall bool
}

// TunnelSession is one running tunnel on the device's side.
type TunnelSession struct {
	// Params is what the device granted.
	Params *tunnel.Params
	// Tunnel is the device's pump; its Stats count host→device as Received.
	Tunnel *tunnel.Tunnel
	// Stack is the device's IPv6 stack, holding Params.ServerAddress.
	Stack *tunnel.UserspaceDevice
	// RSD is the RSD endpoint (and its services) inside the stack.
	RSD *RSD
}

// SetTunnelOptions sets the options of tunnels that lockdownd's CoreDeviceProxy starts on d.
func (d *Device) SetTunnelOptions(o TunnelOptions) {
	d.mu.Lock()
	d.tunnelOpts = o
	d.mu.Unlock()
}

// TunnelOptions returns what SetTunnelOptions set (the zero value: defaults).
func (d *Device) TunnelOptions() TunnelOptions {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tunnelOpts
}

// grant is the MTU the device answers a request for req with.
func (o TunnelOptions) grant(req int) int {
	limit := o.MaxMTU
	if limit <= 0 {
		limit = DefaultTunnelMTU
	}
	return max(min(req, limit), tunnel.MinMTU)
}

// ServeTunnel is the device's side of a tunnel on nc, which is already TLS for CoreDeviceProxy
// (or TLS-PSK for a RemotePairing listener): it answers the CDTunnel request with a fresh ULA
// /64 (::1 the device, ::2 the host), brings up an IPv6 stack at ::1 serving the device's RSD
// endpoint and services, and pumps packets until nc ends or ctx is done. It returns why the
// tunnel ended and leaves nothing running.
func (d *Device) ServeTunnel(ctx context.Context, nc net.Conn, o TunnelOptions) error {
	return d.serveTunnel(ctx, nc, nc, 0, o)
}

// serveTunnel is ServeTunnel with the CDTunnel handshake on hs; maxDatagram > 0 means nc
// carries one packet per datagram of at most that many bytes (QUIC), which caps the grant.
func (d *Device) serveTunnel(ctx context.Context, nc net.Conn, hs io.ReadWriter, maxDatagram int, o TunnelOptions) error {
	hto := o.HandshakeTimeout
	if hto <= 0 {
		hto = DefaultTunnelHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, hto)
	defer cancel()
	req, err := tunnel.ReadRequest(hctx, hs)
	if err != nil {
		nc.Close()
		return err
	}
	if o.Stall {
		d.Log.Info("tunnel: stalling on purpose", "requested_mtu", req)
		stop := context.AfterFunc(ctx, func() { nc.Close() })
		defer stop()
		io.Copy(io.Discard, nc)
		nc.Close()
		return nil
	}
	mtu := o.grant(req)
	if maxDatagram > 0 {
		mtu = max(min(mtu, maxDatagram), tunnel.MinMTU)
	}
	p := tunnel.RandomParams(mtu, 0)
	stack, err := tunnel.NewUserspace(p.ServerAddress, p.MTU)
	if err != nil {
		nc.Close()
		return fmt.Errorf("sim: tunnel: %w", err)
	}
	listen := func(port int) (net.Listener, error) {
		return stack.Net.ListenTCPAddrPort(netip.AddrPortFrom(p.ServerAddress, uint16(port)))
	}
	r, err := d.ServeRSD(ctx, listen, int(o.RSDPort), o.RSD)
	if err != nil {
		stack.Close()
		nc.Close()
		return fmt.Errorf("sim: tunnel: %w", err)
	}
	port, err := portOf(r.Addr())
	if err != nil {
		r.Close()
		stack.Close()
		nc.Close()
		return fmt.Errorf("sim: tunnel: rsd address: %w", err)
	}
	p.ServerRSDPort = uint16(port)
	if err := tunnel.WriteResponse(hctx, hs, p); err != nil {
		r.Close()
		stack.Close()
		nc.Close()
		return err
	}
	log := d.Log.With("tunnel", p.ServerAddress.String())
	t := tunnel.New(nc, &tunnelStack{UserspaceDevice: stack, rsd: r}, p,
		tunnel.Options{DropReceivedAbove: o.DropAbove, OnePacketPerWrite: o.OnePacketPerWrite, DropAll: &d.blackhole, Datagrams: maxDatagram > 0, Log: log})
	log.Info("tunnel up", "client", p.ClientAddress.String(), "mtu", p.MTU, "requested_mtu", req,
		"rsd_port", p.ServerRSDPort, "drop_above", o.DropAbove)
	if o.OnStart != nil {
		o.OnStart(&TunnelSession{Params: p, Tunnel: t, Stack: stack, RSD: r})
	}
	stop := context.AfterFunc(ctx, func() { t.Close() })
	<-t.Done()
	stop()
	return t.Err()
}

// tunnelStack is the device's stack as the pump's device: closing it stops the RSD endpoint
// and its connections first, while the pump still drains what they send on the way out.
type tunnelStack struct {
	*tunnel.UserspaceDevice
	rsd *RSD
}

// SetBlackhole makes every tunnel of d, running or to come, drop what the host sends (on) or
// deliver it again (off).
func (d *Device) SetBlackhole(on bool) {
	d.blackhole.Store(on)
	d.Log.Info("tunnel: blackhole", "on", on)
}

func (s *tunnelStack) Close() error {
	s.rsd.Close()
	return s.UserspaceDevice.Close()
}
