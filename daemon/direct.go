package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/tunnel"
)

// AddressSourcePrefix starts the Source name of a device given by hand.
const AddressSourcePrefix = "address "

// AddressSource reports the device whose RSD endpoint is already reachable at a hand-given
// address (another tool's tunnel, a USB link-local endpoint): it learns the UDID from the
// endpoint's handshake. An endpoint that does not answer fails the source, so the manager logs
// it, shows it in the status route and retries.
type AddressSource struct {
	Addr string
}

// Name names the source after its endpoint.
func (s AddressSource) Name() string { return AddressSourcePrefix + s.Addr }

// Run probes the endpoint and reports the device once its handshake names it.
func (s AddressSource) Run(ctx context.Context, out chan<- Event) error {
	udid, err := probeRSD(ctx, s.Addr)
	if err != nil {
		return fmt.Errorf("rsd endpoint %s unreachable: %w", s.Addr, err)
	}
	select {
	case out <- Event{Attached: true, Device: Device{UDID: udid, ConnectionType: "Network", Source: s.Name(), RSDAddr: s.Addr}}:
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

// probeRSD reads the handshake at addr and returns the device's UDID.
func probeRSD(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	c, h, err := rsd.Dial(ctx, addr, nil)
	if err != nil {
		return "", err
	}
	c.Close()
	if h.UDID() == "" {
		return "", fmt.Errorf("rsd at %s: handshake has no UniqueDeviceID", addr)
	}
	return h.UDID(), nil
}

// OpenAddress "opens" a hand-given device: its RSD endpoint must answer; no tunnel is built.
func OpenAddress(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
	addr := dev.RSDAddr
	stage("rsd " + addr)
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, Info{}, fmt.Errorf("address %q: want IP:PORT: %w", addr, err)
	}
	t := &directTunnel{addr: ap, done: make(chan struct{})}
	if err := checkRSD(ctx, t); err != nil {
		return nil, Info{}, err
	}
	return t, Info{}, nil
}

// Openers picks the opener: a device at an RPPairing port, or whose RSD endpoint is untrusted,
// goes to remote (RemotePairing; nil: not served); a trusted RSD endpoint is used directly;
// everything else goes to usbmux.
func Openers(usbmux, remote Opener) Opener {
	return func(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
		switch {
		case dev.PairingAddr != "" && remote == nil:
			return nil, Info{}, errors.New("remotepairing: not enabled")
		case dev.PairingAddr != "":
			return remote(ctx, dev, stage)
		case dev.RSDAddr != "" && remote != nil:
			t, info, err := remote(ctx, dev, stage)
			if !errors.Is(err, ErrNotUntrusted) {
				return t, info, err
			}
			return OpenAddress(ctx, dev, stage)
		case dev.RSDAddr != "":
			return OpenAddress(ctx, dev, stage)
		}
		return usbmux(ctx, dev, stage)
	}
}

// directTunnel is a device reachable without a tunnel of iosmux's own.
type directTunnel struct {
	addr netip.AddrPort
	once sync.Once
	done chan struct{}
}

func (t *directTunnel) ServerAddress() netip.Addr { return t.addr.Addr() }
func (t *directTunnel) RSDPort() int              { return int(t.addr.Port()) }
func (t *directTunnel) MTU() int                  { return 0 }
func (t *directTunnel) Interface() string         { return "" }
func (t *directTunnel) Backend() string           { return "direct" }
func (t *directTunnel) Done() <-chan struct{}     { return t.done }
func (t *directTunnel) Err() error                { return nil }
func (t *directTunnel) Bytes() (uint64, uint64)   { return 0, 0 }
func (t *directTunnel) Close() error              { t.once.Do(func() { close(t.done) }); return nil }

// Ping checks the endpoint without opening an RSD session: an ICMPv6 echo when the address is
// IPv6 and the process may send one (root), else a TCP connect to the RSD port, closed at once.
func (t *directTunnel) Ping(ctx context.Context) error {
	if a := t.addr.Addr(); a.Is6() && !a.Is4In6() {
		err := tunnel.PingAddr(ctx, a)
		if !errors.Is(err, tunnel.ErrPingNotPermitted) {
			return err
		}
	}
	nc, err := t.Dial(ctx, "tcp", t.addr.String())
	if err != nil {
		return fmt.Errorf("connect to rsd: %w", err)
	}
	return nc.Close()
}

func (t *directTunnel) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
