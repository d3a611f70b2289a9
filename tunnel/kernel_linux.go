package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// KernelSupported says the Kernel backend is implemented on this system.
const KernelSupported = true

// Create implements Backend: it opens a TUN (IFF_TUN|IFF_NO_PI, with wireguard's offloads),
// sets its MTU, brings it up, assigns p.ClientAddress with p's prefix length (no DAD, so it is
// usable at once) and routes p.ServerAddress/128 to it (as appium-ios-tuntap does; the /64
// prefix route already covers it, the host route wins over any overlapping prefix).
//
// The address and route are set with rtnetlink directly rather than by running ip(8): no
// dependency on iproute2 being installed (iosmuxd is one binary), no fork/exec per tunnel on
// a device farm, kernel errors as errnos, and the netlink socket lives in the calling thread's
// network namespace exactly like the TUN itself.
func (k Kernel) Create(p *Params, mtu int) (tun.Device, error) {
	if mtu < MinMTU {
		return nil, fmt.Errorf("tunnel: kernel TUN: mtu %d below IPv6's %d", mtu, MinMTU)
	}
	name := k.Name
	if name == "" {
		name = DefaultKernelName
	}
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("tunnel: kernel TUN: create %q: %w", name, err)
	}
	kd := &KernelDevice{Device: dev, eventsDone: make(chan struct{})}
	go kd.drainEvents()
	if kd.name, err = dev.Name(); err != nil {
		kd.Close()
		return nil, fmt.Errorf("tunnel: kernel TUN: name: %w", err)
	}
	if err := configure(kd.name, p); err != nil {
		kd.Close()
		return nil, fmt.Errorf("tunnel: kernel TUN %s: %w", kd.name, err)
	}
	return kd, nil
}

// netlinkTimeout bounds the wait for each rtnetlink acknowledgement.
const netlinkTimeout = 5 * time.Second

// configure brings the interface up, adds the address and the host route.
func configure(name string, p *Params) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("looking up the interface: %w", err)
	}
	nl, err := dialNetlink()
	if err != nil {
		return err
	}
	defer nl.close()
	idx := uint32(ifi.Index)

	// struct ifinfomsg: family, pad, type, index, flags, change.
	link := make([]byte, unix.SizeofIfInfomsg)
	link[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(link[4:], idx)
	binary.NativeEndian.PutUint32(link[8:], unix.IFF_UP)
	binary.NativeEndian.PutUint32(link[12:], unix.IFF_UP)
	if err := nl.do(unix.RTM_NEWLINK, 0, link); err != nil {
		return fmt.Errorf("setting link up: %w", err)
	}

	// struct ifaddrmsg: family, prefixlen, flags, scope, index.
	a16 := p.ClientAddress.As16()
	addr := make([]byte, unix.SizeofIfAddrmsg)
	addr[0] = unix.AF_INET6
	addr[1] = byte(p.PrefixLen())
	addr[2] = unix.IFA_F_NODAD
	addr[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(addr[4:], idx)
	addr = appendAttr(addr, unix.IFA_LOCAL, a16[:])
	addr = appendAttr(addr, unix.IFA_ADDRESS, a16[:])
	if err := nl.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, addr); err != nil {
		return fmt.Errorf("adding address %v: %w", p.Prefix(), err)
	}

	// struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
	s16 := p.ServerAddress.As16()
	route := make([]byte, unix.SizeofRtMsg)
	route[0] = unix.AF_INET6
	route[1] = 128
	route[4] = unix.RT_TABLE_MAIN
	route[5] = unix.RTPROT_STATIC
	route[6] = unix.RT_SCOPE_UNIVERSE
	route[7] = unix.RTN_UNICAST
	route = appendAttr(route, unix.RTA_DST, s16[:])
	route = appendAttr(route, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, idx))
	if err := nl.do(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, route); err != nil {
		return fmt.Errorf("adding route %v/128: %w", p.ServerAddress, err)
	}
	return nil
}

// appendAttr appends one rtattr, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// rtnl is a NETLINK_ROUTE socket doing one request at a time.
type rtnl struct {
	fd  int
	seq uint32
}

func dialNetlink() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd, seq: uint32(time.Now().UnixNano())}, nil
}

func (n *rtnl) close() { unix.Close(n.fd) }

// do sends one request with NLM_F_REQUEST|NLM_F_ACK and waits for its acknowledgement.
func (n *rtnl) do(typ uint16, flags uint16, body []byte) error {
	n.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], n.seq)
	msg = append(msg, body...)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		nr, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("netlink: no acknowledgement within %v", netlinkTimeout)
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		for b := buf[:nr]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("netlink: malformed reply")
			}
			mtyp := binary.NativeEndian.Uint16(b[4:])
			mseq := binary.NativeEndian.Uint32(b[8:])
			m := b[:l]
			b = b[min((l+3)&^3, len(b)):]
			if mseq != n.seq || mtyp != unix.NLMSG_ERROR {
				continue
			}
			if len(m) < unix.SizeofNlMsghdr+4 {
				return errors.New("netlink: short error message")
			}
			if code := int32(binary.NativeEndian.Uint32(m[unix.SizeofNlMsghdr:])); code != 0 {
				return syscall.Errno(-code)
			}
			return nil
		}
	}
}
