package tunnel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Compile-time checks: each macOS constant darwin_msg.go writes by hand equals x/sys/unix's
// (a negative constant converted to uint does not compile, so both differences must be 0).
const (
	_ = uint(darwinAFInet6-unix.AF_INET6) + uint(unix.AF_INET6-darwinAFInet6)
	_ = uint(darwinAFLink-unix.AF_LINK) + uint(unix.AF_LINK-darwinAFLink)
	_ = uint(darwinIFNAMSIZ-unix.IFNAMSIZ) + uint(unix.IFNAMSIZ-darwinIFNAMSIZ)
	_ = uint(darwinIFFUp-unix.IFF_UP) + uint(unix.IFF_UP-darwinIFFUp)
	_ = uint(darwinSizeofSockaddr6-unix.SizeofSockaddrInet6) + uint(unix.SizeofSockaddrInet6-darwinSizeofSockaddr6)
	_ = uint(darwinSizeofSockaddrDL-unix.SizeofSockaddrDatalink) + uint(unix.SizeofSockaddrDatalink-darwinSizeofSockaddrDL)
	_ = uint(darwinSizeofRtMsghdr-unix.SizeofRtMsghdr) + uint(unix.SizeofRtMsghdr-darwinSizeofRtMsghdr)
	_ = uint(darwinRTMVersion-unix.RTM_VERSION) + uint(unix.RTM_VERSION-darwinRTMVersion)
	_ = uint(darwinRTMAdd-unix.RTM_ADD) + uint(unix.RTM_ADD-darwinRTMAdd)
	_ = uint(darwinRTMDelete-unix.RTM_DELETE) + uint(unix.RTM_DELETE-darwinRTMDelete)
	_ = uint(darwinRTFUp-unix.RTF_UP) + uint(unix.RTF_UP-darwinRTFUp)
	_ = uint(darwinRTFHost-unix.RTF_HOST) + uint(unix.RTF_HOST-darwinRTFHost)
	_ = uint(darwinRTFStatic-unix.RTF_STATIC) + uint(unix.RTF_STATIC-darwinRTFStatic)
	_ = uint(darwinRTADst-unix.RTA_DST) + uint(unix.RTA_DST-darwinRTADst)
	_ = uint(darwinRTAGateway-unix.RTA_GATEWAY) + uint(unix.RTA_GATEWAY-darwinRTAGateway)
	_ = uint(0x80206910-unix.SIOCSIFFLAGS) + uint(unix.SIOCSIFFLAGS-0x80206910)
	_ = uint(0xc0206911-unix.SIOCGIFFLAGS) + uint(unix.SIOCGIFFLAGS-0xc0206911)
)

// KernelSupported says the Kernel backend is implemented on this system.
const KernelSupported = true

// darwinKernelName is the name a utun is asked for when Kernel.Name is "": "utun" lets the
// kernel pick the unit (utun names cannot carry "iosmux"; wireguard's CreateTUN accepts only
// utun[N]).
const darwinKernelName = "utun"

// routeSeq numbers this process's routing-socket messages.
var routeSeq atomic.Int32

// Create implements Backend on macOS: it opens a utun (wireguard's tun: the
// com.apple.net.utun_control kernel control, MTU set with SIOCSIFMTU), takes stale addresses
// of the same tunnel prefix off other utuns, brings the interface up (SIOCSIFFLAGS), assigns
// p.ClientAddress with p's prefix (SIOCAIFADDR_IN6, no DAD, infinite lifetimes) and routes
// p.ServerAddress/128 to it (RTM_ADD on the routing socket, replacing an existing route).
// No ifconfig or route subprocess. Close destroys the utun, and with it its address and
// routes: the kernel removes a utun when its control socket closes.
func (k Kernel) Create(p *Params, mtu int) (tun.Device, error) {
	if mtu < MinMTU {
		return nil, fmt.Errorf("tunnel: kernel TUN: mtu %d below IPv6's %d", mtu, MinMTU)
	}
	name := k.Name
	if name == "" {
		name = darwinKernelName
	}
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("tunnel: kernel TUN: create utun %q: %w", name, err)
	}
	kd := &KernelDevice{Device: dev, eventsDone: make(chan struct{})}
	go kd.drainEvents()
	if kd.name, err = dev.Name(); err != nil {
		kd.Close()
		return nil, fmt.Errorf("tunnel: kernel TUN: name: %w", err)
	}
	if err := configureDarwin(kd.name, p); err != nil {
		kd.Close()
		return nil, fmt.Errorf("tunnel: kernel TUN %s: %w", kd.name, err)
	}
	return kd, nil
}

// configureDarwin cleans stale addresses, brings name up, adds the address and host route.
func configureDarwin(name string, p *Params) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("looking up the interface: %w", err)
	}
	fd, err := socketCloexec(unix.AF_INET6, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("inet6 socket: %w", err)
	}
	defer unix.Close(fd)

	if err := removeStale(fd, name, p.Prefix()); err != nil {
		return err
	}

	req, err := darwinIfreqFlags(name, 0)
	if err != nil {
		return err
	}
	if err := ioctl(fd, darwinSIOCGIFFLAGS, req); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	if req, err = darwinIfreqFlags(name, darwinIfreqGetFlags(req)|darwinIFFUp); err != nil {
		return err
	}
	if err := ioctl(fd, darwinSIOCSIFFLAGS, req); err != nil {
		return fmt.Errorf("setting link up (SIOCSIFFLAGS): %w", err)
	}

	areq, err := darwinAliasreq6(name, p.ClientAddress, p.PrefixLen())
	if err != nil {
		return err
	}
	if err := ioctl(fd, darwinSIOCAIFADDR_IN6, areq); err != nil {
		return fmt.Errorf("adding address %v (SIOCAIFADDR_IN6): %w", p.Prefix(), err)
	}

	if err := routeHost(darwinRTMAdd, ifi.Index, name, p.ServerAddress); errors.Is(err, unix.EEXIST) {
		// A route to the device's address is left from another tunnel: replace it.
		if err := routeHost(darwinRTMDelete, ifi.Index, name, p.ServerAddress); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("replacing route %v/128 (RTM_DELETE): %w", p.ServerAddress, err)
		}
		err = routeHost(darwinRTMAdd, ifi.Index, name, p.ServerAddress)
		if err != nil {
			return fmt.Errorf("adding route %v/128 (RTM_ADD): %w", p.ServerAddress, err)
		}
	} else if err != nil {
		return fmt.Errorf("adding route %v/128 (RTM_ADD): %w", p.ServerAddress, err)
	}
	return nil
}

// removeStale takes addresses inside prefix off every other utun (see staleUtunAddrs).
func removeStale(fd int, own string, prefix netip.Prefix) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}
	var all []ifaceAddrs
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue // the interface went away meanwhile
		}
		ia := ifaceAddrs{Name: ifi.Name}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if pa, ok := netip.AddrFromSlice(n.IP); ok {
					ones, _ := n.Mask.Size()
					ia.Addrs = append(ia.Addrs, netip.PrefixFrom(pa, ones))
				}
			}
		}
		all = append(all, ia)
	}
	for _, s := range staleUtunAddrs(all, own, prefix) {
		req, err := darwinIn6Ifreq(s.Iface, s.Addr)
		if err != nil {
			return err
		}
		if err := ioctl(fd, darwinSIOCDIFADDR_IN6, req); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing stale address %v from %s (SIOCDIFADDR_IN6): %w", s.Addr, s.Iface, err)
		}
	}
	return nil
}

// ioctl issues request req with the buffer b (built to the request's struct size).
func ioctl(fd int, req uint32, b []byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&b[0])))
	if e != 0 {
		return e
	}
	return nil
}

// routeHost sends one RTM_ADD or RTM_DELETE for dst/128 through the interface. The routing
// socket answers a failed request with an errno from write(2); the echoed copy of the
// message is not read (the socket is closed at once).
func routeHost(typ uint8, ifIndex int, ifName string, dst netip.Addr) error {
	msg, err := darwinRouteMsg(typ, routeSeq.Add(1), int32(os.Getpid()), ifIndex, ifName, dst)
	if err != nil {
		return err
	}
	fd, err := socketCloexec(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("routing socket: %w", err)
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, msg)
	if err != nil {
		return err
	}
	if n != len(msg) {
		return fmt.Errorf("routing socket: short write %d of %d", n, len(msg))
	}
	return nil
}

// socketCloexec opens a socket that no child process inherits (macOS has no SOCK_CLOEXEC;
// the fork lock closes the window between socket and FD_CLOEXEC, as package net does).
func socketCloexec(family, typ, proto int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(family, typ, proto)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	return fd, nil
}
