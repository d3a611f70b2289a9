package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
)

// Backend makes the host end of a tunnel: the tun.Device the pump reads and writes.
type Backend interface {
	// Create makes a device for the granted parameters p, with link MTU mtu (p.MTU or less
	// when clamped). The device belongs to the caller (in Start: to the Tunnel).
	Create(p *Params, mtu int) (tun.Device, error)
}

// Dialer is what a device offers when the host can reach the device's addresses through it:
// UserspaceDevice dials inside its gVisor stack, KernelDevice with the host's own stack.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Userspace is the rootless backend: a gVisor IPv6 stack holding the client address, reached
// through the Tunnel's (or the device's) DialContext instead of a kernel interface.
type Userspace struct{}

// Create implements Backend.
func (Userspace) Create(p *Params, mtu int) (tun.Device, error) {
	return NewUserspace(p.ClientAddress, mtu)
}

// UserspaceDevice is a tun.Device backed by a gVisor IPv6 stack. Net is the stack: dial and
// listen on it to reach the other end of the tunnel.
type UserspaceDevice struct {
	tun.Device
	Net  *Stack
	addr netip.Addr
}

// NewUserspace makes a gVisor stack with one address and link MTU mtu. The package sim uses it
// for the device's side of the tunnel too.
func NewUserspace(addr netip.Addr, mtu int) (*UserspaceDevice, error) {
	if !addr.Is6() || addr.Is4In6() {
		return nil, fmt.Errorf("tunnel: userspace stack: address %v is not IPv6", addr)
	}
	if mtu < MinMTU || mtu > 0xffff {
		return nil, fmt.Errorf("tunnel: userspace stack: mtu %d outside [%d, 65535]", mtu, MinMTU)
	}
	dev, err := newGvisorTUN(addr, mtu)
	if err != nil {
		return nil, fmt.Errorf("tunnel: userspace stack: %w", err)
	}
	return &UserspaceDevice{Device: dev, Net: dev.st, addr: addr}, nil
}

// Addr is the stack's address.
func (u *UserspaceDevice) Addr() netip.Addr { return u.addr }

// DialContext connects through the stack ("tcp", "tcp6", "udp", "udp6"; IPv6 literals).
func (u *UserspaceDevice) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return u.Net.DialContext(ctx, network, address)
}

// Kernel is the backend with a kernel TUN interface (Linux: /dev/net/tun with IFF_NO_PI, via
// golang.zx2c4.com/wireguard/tun). It needs CAP_NET_ADMIN. The interface gets the client
// address with the granted prefix, the MTU, link up, and a route to the server address.
type Kernel struct {
	// Name is the interface name; "" means "iosmux%d" (the kernel picks the number).
	Name string
}

// DefaultKernelName is the interface name pattern Kernel uses when Name is "".
const DefaultKernelName = "iosmux%d"

// KernelDevice is a configured kernel TUN interface. The host's own stack reaches the device
// through it, so DialContext is an ordinary dial (in the network namespace it was created in).
type KernelDevice struct {
	tun.Device
	name       string
	eventsDone chan struct{}
	close      sync.Once
	err        error
}

// InterfaceName is the TUN interface's name, as the kernel assigned it.
func (k *KernelDevice) InterfaceName() string { return k.name }

// DialContext dials with the host's stack; the interface's routes lead into the tunnel.
func (k *KernelDevice) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// Close removes the interface (with its address and routes) and waits for wireguard's event
// goroutines to end. It is safe to call more than once.
func (k *KernelDevice) Close() error {
	k.close.Do(func() {
		k.err = k.Device.Close()
		<-k.eventsDone
	})
	return k.err
}

// drainEvents consumes the device's events until they close: wireguard's netlink listener
// blocks on a full events channel, which would leak it past Close.
func (k *KernelDevice) drainEvents() {
	defer close(k.eventsDone)
	for range k.Device.Events() {
	}
}
