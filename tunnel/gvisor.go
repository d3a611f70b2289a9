package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// nicID is the one NIC of a userspace stack.
const nicID = 1

// outboundQueue is how many packets the stack may queue for the pump before it drops.
const outboundQueue = 1024

// Stack is a gVisor IPv6 stack with one address: dial and listen on it.
type Stack struct {
	s    *stack.Stack
	addr netip.Addr
}

// gvisorTUN is a tun.Device whose other side is a gVisor stack. Unlike wireguard's
// tun/netstack it hands packets over through the link endpoint's own queue, so closing it
// while the stack still writes (a late RST) cannot panic: Close stops and waits for the stack
// before it closes anything the stack writes to.
type gvisorTUN struct {
	st     *Stack
	ep     *channel.Endpoint
	mtu    int
	events chan tun.Event
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// newGvisorTUN makes a stack holding addr behind a device of link MTU mtu.
func newGvisorTUN(addr netip.Addr, mtu int) (*gvisorTUN, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		s.Close()
		return nil, fmt.Errorf("enabling TCP SACK: %v", err)
	}
	ep := channel.New(outboundQueue, uint32(mtu), "")
	if err := s.CreateNIC(nicID, ep); err != nil {
		s.Close()
		return nil, fmt.Errorf("CreateNIC: %v", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: tcpip.AddrFromSlice(addr.AsSlice()).WithPrefix()}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("adding %v: %v", addr, err)
	}
	s.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	ctx, cancel := context.WithCancel(context.Background())
	t := &gvisorTUN{st: &Stack{s: s, addr: addr}, ep: ep, mtu: mtu, events: make(chan tun.Event, 1), ctx: ctx, cancel: cancel}
	t.events <- tun.EventUp
	return t, nil
}

func (t *gvisorTUN) File() *os.File           { return nil }
func (t *gvisorTUN) MTU() (int, error)        { return t.mtu, nil }
func (t *gvisorTUN) Name() (string, error)    { return "gvisor", nil }
func (t *gvisorTUN) Events() <-chan tun.Event { return t.events }
func (t *gvisorTUN) BatchSize() int           { return gvisorBatch }

// gvisorBatch is how many queued packets one Read hands over at most.
const gvisorBatch = 64

// Read returns the packets the stack has queued (at least one, blocking until there is one or
// Close), copied straight from the stack's buffers.
func (t *gvisorTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := t.ep.ReadContext(t.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copyPacket(bufs[n][offset:], pkt)
		pkt.DecRef()
		n++
		if n == len(bufs) {
			return n, nil
		}
		if pkt = t.ep.Read(); pkt == nil {
			return n, nil
		}
	}
}

// copyPacket copies the whole of pkt into b (truncating to len(b)) without flattening it first.
func copyPacket(b []byte, pkt *stack.PacketBuffer) int {
	vl, skip := pkt.AsViewList()
	n := 0
	for v := vl.Front(); v != nil && n < len(b); v = v.Next() {
		s := v.AsSlice()
		if skip >= len(s) {
			skip -= len(s)
			continue
		}
		n += copy(b[n:], s[skip:])
		skip = 0
	}
	return n
}

// Write hands IPv6 packets to the stack; anything else is ignored.
func (t *gvisorTUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.ctx.Err() != nil {
		return 0, os.ErrClosed
	}
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 || p[0]>>4 != 6 {
			continue
		}
		pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		t.ep.InjectInbound(header.IPv6ProtocolNumber, pkb)
		pkb.DecRef()
	}
	return len(bufs), nil
}

// gvisorDevice is implemented by the userspace devices (and what embeds them, like package
// sim's device stack): the pump then reads each packet from the stream straight into a gVisor
// buffer instead of into its own first.
type gvisorDevice interface{ gvisor() *gvisorTUN }

func (t *gvisorTUN) gvisor() *gvisorTUN { return t }

func (u *UserspaceDevice) gvisor() *gvisorTUN {
	g, _ := u.Device.(*gvisorTUN)
	return g
}

// inject reads the next packet, n bytes, from pr into a gVisor buffer and hands it to the
// stack. gVisor zeroes every buffer it hands out (buffer.newChunk) and has no way to wrap
// memory it does not own, so this one copy is the least it allows.
func (t *gvisorTUN) inject(pr *PacketReader, n int) error {
	if t.ctx.Err() != nil {
		return os.ErrClosed
	}
	v := buffer.NewViewSize(n)
	if _, err := pr.ReadPacket(v.AsSlice()); err != nil {
		v.Release()
		return err
	}
	pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	t.ep.InjectInbound(header.IPv6ProtocolNumber, pkb)
	pkb.DecRef()
	return nil
}

// Close stops the stack, waits for its goroutines, then closes the link; it is idempotent.
func (t *gvisorTUN) Close() error {
	t.once.Do(func() {
		t.cancel()
		t.st.s.Close()
		t.st.s.Wait()
		t.ep.Close()
		close(t.events)
	})
	return nil
}

// Addr is the stack's address.
func (s *Stack) Addr() netip.Addr { return s.addr }

func (s *Stack) full(ap netip.AddrPort) tcpip.FullAddress {
	fa := tcpip.FullAddress{NIC: nicID, Port: ap.Port()}
	if ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(ap.Addr().AsSlice())
	}
	return fa
}

// ListenTCPAddrPort listens for TCP on the stack.
func (s *Stack) ListenTCPAddrPort(ap netip.AddrPort) (*gonet.TCPListener, error) {
	return gonet.ListenTCP(s.s, s.full(ap), ipv6.ProtocolNumber)
}

// ListenUDPAddrPort opens a UDP socket bound on the stack.
func (s *Stack) ListenUDPAddrPort(ap netip.AddrPort) (*gonet.UDPConn, error) {
	laddr := s.full(ap)
	return gonet.DialUDP(s.s, &laddr, nil, ipv6.ProtocolNumber)
}

// DialContext connects through the stack: "tcp", "tcp6", "udp" or "udp6" to an IPv6 literal.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("tunnel: dial %s: bad port", address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is6() || ip.Is4In6() {
		return nil, fmt.Errorf("tunnel: dial %s: want an IPv6 address", address)
	}
	ra := s.full(netip.AddrPortFrom(ip.WithZone(""), uint16(pn)))
	switch network {
	case "tcp", "tcp6":
		return gonet.DialContextTCP(ctx, s.s, ra, ipv6.ProtocolNumber)
	case "udp", "udp6":
		return gonet.DialUDP(s.s, nil, &ra, ipv6.ProtocolNumber)
	}
	return nil, fmt.Errorf("tunnel: dial: network %q not supported by the userspace stack", network)
}
