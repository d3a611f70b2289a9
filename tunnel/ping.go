package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvipv6 "gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvicmp "gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// pingPayload is the echo data: small, so a probe costs the device ~100 bytes each way.
const pingPayload = 8

// pingSeq numbers echo requests across tunnels.
var pingSeq atomic.Uint32

// Ping sends one ICMPv6 echo request to the device's tunnel address and waits for the reply
// until ctx ends: a liveness probe that costs the device no session (the daemon's watch).
func (t *Tunnel) Ping(ctx context.Context) error {
	dst := t.ServerAddress()
	if !dst.IsValid() {
		return errors.New("tunnel: ping: no device address")
	}
	seq := uint16(pingSeq.Add(1))
	var err error
	switch dev := t.dev.(type) {
	case *UserspaceDevice:
		err = dev.Net.Ping(ctx, dst, seq)
	case *KernelDevice:
		err = pingKernel(ctx, dst, dev.name, seq)
	default:
		err = fmt.Errorf("device %T cannot ping", t.dev)
	}
	if err != nil {
		return fmt.Errorf("tunnel: ping %s: %w", dst, err)
	}
	return nil
}

// Ping sends an ICMPv6 echo request from the stack to dst and waits for the reply.
func (s *Stack) Ping(ctx context.Context, dst netip.Addr, seq uint16) error {
	var wq waiter.Queue
	ep, terr := s.s.NewEndpoint(gvicmp.ProtocolNumber6, gvipv6.ProtocolNumber, &wq)
	if terr != nil {
		return fmt.Errorf("icmp endpoint: %v", terr)
	}
	defer ep.Close()
	we, ready := waiter.NewChannelEntry(waiter.EventIn)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	if terr := ep.Connect(tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(dst.AsSlice())}); terr != nil {
		return fmt.Errorf("icmp connect: %v", terr)
	}
	req := header.ICMPv6(make([]byte, header.ICMPv6EchoMinimumSize+pingPayload))
	req.SetType(header.ICMPv6EchoRequest)
	req.SetSequence(seq)
	binary.BigEndian.PutUint64(req[header.ICMPv6EchoMinimumSize:], uint64(time.Now().UnixNano()))
	if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{}); terr != nil {
		return fmt.Errorf("icmp write: %v", terr)
	}
	for {
		var buf bytes.Buffer
		_, terr := ep.Read(&buf, tcpip.ReadOptions{})
		if _, wait := terr.(*tcpip.ErrWouldBlock); wait {
			select {
			case <-ready:
				continue
			case <-ctx.Done():
				return fmt.Errorf("no echo reply: %w", ctx.Err())
			}
		}
		if terr != nil {
			return fmt.Errorf("icmp read: %v", terr)
		}
		reply := header.ICMPv6(buf.Bytes())
		if len(reply) >= header.ICMPv6EchoMinimumSize && reply.Type() == header.ICMPv6EchoReply && reply.Sequence() == seq {
			return nil
		}
	}
}

// ErrPingNotPermitted means the process may not open a raw ICMPv6 socket (not root).
var ErrPingNotPermitted = errors.New("no permission for a raw ICMPv6 socket")

// PingAddr sends one ICMPv6 echo request to dst with the host's own stack and waits for the
// reply: for a device reached through another tool's tunnel. It needs root (a raw socket);
// otherwise it returns ErrPingNotPermitted.
func PingAddr(ctx context.Context, dst netip.Addr) error {
	if !dst.Is6() || dst.Is4In6() {
		return fmt.Errorf("tunnel: ping %s: not an IPv6 address", dst)
	}
	if err := pingKernel(ctx, dst.WithZone(""), dst.Zone(), uint16(pingSeq.Add(1))); err != nil {
		return fmt.Errorf("tunnel: ping %s: %w", dst, err)
	}
	return nil
}

// pingKernel pings dst with a raw ICMPv6 socket (the kernel backend runs as root); replies are
// matched by identifier, sequence and source.
func pingKernel(ctx context.Context, dst netip.Addr, ifname string, seq uint16) error {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: %w", ErrPingNotPermitted, err)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeEchoReply)
	c.IPv6PacketConn().SetICMPFilter(&f) // best effort: only fewer wake-ups
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var idb [2]byte
	rand.Read(idb[:])
	id := int(binary.BigEndian.Uint16(idb[:]))
	msg := icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{ID: id, Seq: int(seq), Data: make([]byte, pingPayload)}}
	b, err := msg.Marshal(nil) // the kernel fills in the ICMPv6 checksum
	if err != nil {
		return err
	}
	to := &net.IPAddr{IP: dst.AsSlice()}
	if dst.IsLinkLocalUnicast() {
		to.Zone = ifname
	}
	if _, err := c.WriteTo(b, to); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("no echo reply: %w", ctx.Err())
			}
			return err
		}
		m, err := icmp.ParseMessage(58, buf[:n])
		if err != nil || m.Type != ipv6.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		ip, _ := from.(*net.IPAddr)
		if ok && e.ID == id && e.Seq == int(seq) && ip != nil && ip.IP.Equal(dst.AsSlice()) {
			return nil
		}
	}
}
