package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Port and groups of mDNS.
var (
	group6 = net.ParseIP("ff02::fb")
	group4 = net.IPv4(224, 0, 0, 251)
)

// Port is mDNS's UDP port.
const Port = 5353

// packet is one datagram and where it came from.
type packet struct {
	data  []byte
	iface int
	src   netip.AddrPort
}

// mconn is the two multicast sockets (IPv6 and IPv4) on port 5353, joined on some interfaces.
// Either may be missing (no IPv4 or IPv6 in this namespace); one is needed.
type mconn struct {
	c6 net.PacketConn
	p6 *ipv6.PacketConn
	c4 net.PacketConn
	p4 *ipv4.PacketConn

	mu     sync.Mutex
	joined map[int]bool
}

// listen opens the sockets with SO_REUSEADDR/SO_REUSEPORT, so avahi and other browsers on this
// host keep working beside them.
func listen(ctx context.Context) (*mconn, error) {
	lc := net.ListenConfig{Control: reusePort}
	c := &mconn{joined: map[int]bool{}}
	var err6, err4 error
	if c.c6, err6 = lc.ListenPacket(ctx, "udp6", fmt.Sprintf("[::]:%d", Port)); err6 == nil {
		c.p6 = ipv6.NewPacketConn(c.c6)
		c.p6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagSrc, true)
		c.p6.SetMulticastHopLimit(255)
		c.p6.SetMulticastLoopback(true)
	}
	if c.c4, err4 = lc.ListenPacket(ctx, "udp4", fmt.Sprintf("0.0.0.0:%d", Port)); err4 == nil {
		c.p4 = ipv4.NewPacketConn(c.c4)
		c.p4.SetControlMessage(ipv4.FlagInterface, true)
		c.p4.SetMulticastTTL(255)
		c.p4.SetMulticastLoopback(true)
	}
	if c.p6 == nil && c.p4 == nil {
		return nil, fmt.Errorf("mdns: no socket on port %d: %w", Port, errors.Join(err6, err4))
	}
	return c, nil
}

// join joins the mDNS groups on ifi; it succeeds if either family joined.
func (c *mconn) join(ifi *net.Interface) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joined[ifi.Index] {
		return nil
	}
	var err6, err4 error = errors.New("no IPv6 socket"), errors.New("no IPv4 socket")
	if c.p6 != nil {
		err6 = c.p6.JoinGroup(ifi, &net.UDPAddr{IP: group6})
	}
	if c.p4 != nil {
		err4 = c.p4.JoinGroup(ifi, &net.UDPAddr{IP: group4})
	}
	if err6 != nil && err4 != nil {
		return fmt.Errorf("mdns: join on %s: %w", ifi.Name, errors.Join(err6, err4))
	}
	c.joined[ifi.Index] = true
	return nil
}

// leave forgets an interface that went away.
func (c *mconn) leave(ifi *net.Interface) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.joined[ifi.Index] {
		return
	}
	delete(c.joined, ifi.Index)
	if c.p6 != nil {
		c.p6.LeaveGroup(ifi, &net.UDPAddr{IP: group6})
	}
	if c.p4 != nil {
		c.p4.LeaveGroup(ifi, &net.UDPAddr{IP: group4})
	}
}

func (c *mconn) isJoined(index int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined[index]
}

// send multicasts b on ifi over both families; it succeeds if either did.
func (c *mconn) send(ifi *net.Interface, b []byte) error {
	var err6, err4 error = errors.New("no IPv6 socket"), errors.New("no IPv4 socket")
	if c.p6 != nil {
		_, err6 = c.p6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255},
			&net.UDPAddr{IP: group6, Port: Port, Zone: ifi.Name})
	}
	if c.p4 != nil {
		c.mu.Lock()
		if err4 = c.p4.SetMulticastInterface(ifi); err4 == nil {
			_, err4 = c.p4.WriteTo(b, nil, &net.UDPAddr{IP: group4, Port: Port})
		}
		c.mu.Unlock()
	}
	if err6 != nil && err4 != nil {
		return fmt.Errorf("mdns: send on %s: %w", ifi.Name, errors.Join(err6, err4))
	}
	return nil
}

// read delivers the datagrams of both sockets on joined interfaces to out until the sockets
// close; each is read into a MaxPacket buffer (a longer one is cut and dropped by Parse's
// decoder as truncated).
func (c *mconn) read(out chan<- packet, done <-chan struct{}) {
	var wg sync.WaitGroup
	deliver := func(b []byte, n, index int, src netip.AddrPort) {
		if !c.isJoined(index) {
			return
		}
		select {
		case out <- packet{data: append([]byte(nil), b[:n]...), iface: index, src: src}:
		case <-done:
		}
	}
	// loop reads one socket; recv returns the interface index from its control message (-1
	// when it carried none).
	loop := func(recv func([]byte) (n, index int, src net.Addr, err error)) {
		b := make([]byte, MaxPacket+1)
		for {
			n, index, src, err := recv(b)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if n > MaxPacket || index < 0 {
				continue
			}
			ua, _ := src.(*net.UDPAddr)
			if ua == nil {
				continue
			}
			deliver(b, n, index, ua.AddrPort())
		}
	}
	if c.p6 != nil {
		wg.Go(func() {
			loop(func(b []byte) (int, int, net.Addr, error) {
				n, cm, src, err := c.p6.ReadFrom(b)
				if cm == nil {
					return n, -1, src, err
				}
				return n, cm.IfIndex, src, err
			})
		})
	}
	if c.p4 != nil {
		wg.Go(func() {
			loop(func(b []byte) (int, int, net.Addr, error) {
				n, cm, src, err := c.p4.ReadFrom(b)
				if cm == nil {
					return n, -1, src, err
				}
				return n, cm.IfIndex, src, err
			})
		})
	}
	wg.Wait()
}

func (c *mconn) close() {
	if c.c6 != nil {
		c.c6.Close()
	}
	if c.c4 != nil {
		c.c4.Close()
	}
}
