package tunnel

// The byte layouts kernel_darwin.go hands to the macOS kernel. They are built here, in an
// OS-neutral file, so that Linux CI tests them byte for byte (darwin_msg_test.go); the darwin
// file only opens sockets and passes these buffers on. Both darwin architectures (arm64,
// amd64) are little-endian LP64, so host-order fields are written little-endian.
//
// Layouts, from the macOS SDK headers (xnu bsd/):
//   - net/if.h         struct ifreq (IFNAMSIZ 16 + a 16-byte union: 32 bytes), IFF_UP.
//   - netinet6/in6.h   struct sockaddr_in6 (28 bytes: len, family, port, flowinfo, addr,
//     scope_id), AF_INET6 = 30.
//   - netinet6/in6_var.h struct in6_addrlifetime (time_t expire, preferred; u_int32_t
//     vltime, pltime: 24 bytes), struct in6_aliasreq (name[16], addr, dstaddr, prefixmask,
//     int flags, in6_addrlifetime: 128 bytes, the lifetime at offset 104), struct in6_ifreq
//     (name[16] + a union whose largest member is struct icmp6_ifstat: 288 bytes, the size
//     behind the SIOCDIFADDR_IN6 value 0x81206919 that other macOS code uses),
//     SIOCAIFADDR_IN6 = _IOW('i', 26, struct in6_aliasreq), SIOCDIFADDR_IN6 =
//     _IOW('i', 25, struct in6_ifreq), IN6_IFF_NODAD = 0x0020.
//   - netinet6/nd6.h   ND6_INFINITE_LIFETIME = 0xffffffff.
//   - sys/ioccom.h     _IOW(g, n, t) = IOC_IN | (sizeof(t) & IOCPARM_MASK) << 16 | g << 8 | n,
//     IOC_IN = 0x80000000, IOCPARM_MASK = 0x1fff.
//   - net/route.h      struct rt_msghdr (92 bytes: u_short msglen; u_char version, type;
//     u_short index; int flags, addrs; pid_t pid; int seq, errno, use; u_int32_t inits;
//     struct rt_metrics of 14 u_int32_t), RTM_VERSION 5, RTM_ADD 1, RTM_DELETE 2, RTF_UP 0x1,
//     RTF_HOST 0x4, RTF_STATIC 0x800, RTA_DST 0x1, RTA_GATEWAY 0x2; sockaddrs after the
//     header padded to 4 bytes (ROUNDUP32 in xnu's rtsock.c).
//   - net/if_dl.h      struct sockaddr_dl (len, family AF_LINK = 18, u_short index, type,
//     nlen, alen, slen, data[12]: 20 bytes).
//
// kernel_darwin.go checks at compile time that every constant x/sys/unix also defines for
// darwin has the same value here.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// macOS constants (see the header list above).
const (
	darwinIFNAMSIZ         = 16
	darwinAFInet6          = 30
	darwinAFLink           = 18
	darwinIFFUp            = 0x1
	darwinSizeofIfreq      = 32
	darwinSizeofSockaddr6  = 28
	darwinSizeofSockaddrDL = 20
	darwinSizeofAliasreq6  = 128
	darwinSizeofIn6Ifreq   = 288
	darwinIN6IFFNoDAD      = 0x0020
	darwinInfiniteLifetime = 0xffffffff

	darwinRTMVersion      = 5
	darwinRTMAdd          = 1
	darwinRTMDelete       = 2
	darwinRTFUp           = 0x1
	darwinRTFHost         = 0x4
	darwinRTFStatic       = 0x800
	darwinRTADst          = 0x1
	darwinRTAGateway      = 0x2
	darwinSizeofRtMsghdr  = 92
	darwinIFTOther        = 0x1 // net/if_types.h IFT_OTHER: what utun reports as its type
	darwinIOCIn           = 0x80000000
	darwinIOCParmMask     = 0x1fff
	darwinIOCGroupIfreq   = 'i'
	darwinSIOCSIFFLAGSNum = 16
	darwinSIOCGIFFLAGSNum = 17
	darwinSIOCDIFADDR6Num = 25
	darwinSIOCAIFADDR6Num = 26
)

// darwinIOW is sys/ioccom.h's _IOW(group, num, size): a request that writes size bytes in.
func darwinIOW(group byte, num byte, size int) uint32 {
	return darwinIOCIn | uint32(size&darwinIOCParmMask)<<16 | uint32(group)<<8 | uint32(num)
}

// darwinIOWR is _IOWR: IOC_INOUT = IOC_IN|IOC_OUT (0xc0000000).
func darwinIOWR(group byte, num byte, size int) uint32 {
	return darwinIOW(group, num, size) | 0x40000000
}

// The ioctl requests kernel_darwin.go issues.
var (
	darwinSIOCSIFFLAGS    = darwinIOW(darwinIOCGroupIfreq, darwinSIOCSIFFLAGSNum, darwinSizeofIfreq)
	darwinSIOCGIFFLAGS    = darwinIOWR(darwinIOCGroupIfreq, darwinSIOCGIFFLAGSNum, darwinSizeofIfreq)
	darwinSIOCAIFADDR_IN6 = darwinIOW(darwinIOCGroupIfreq, darwinSIOCAIFADDR6Num, darwinSizeofAliasreq6)
	darwinSIOCDIFADDR_IN6 = darwinIOW(darwinIOCGroupIfreq, darwinSIOCDIFADDR6Num, darwinSizeofIn6Ifreq)
)

// putIfName writes an interface name into a NUL-terminated char[IFNAMSIZ].
func putIfName(b []byte, name string) error {
	if name == "" || len(name) >= darwinIFNAMSIZ || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("interface name %q does not fit IFNAMSIZ %d", name, darwinIFNAMSIZ)
	}
	copy(b[:darwinIFNAMSIZ], name)
	return nil
}

// putSockaddr6 writes a struct sockaddr_in6 holding a (port, flowinfo and scope 0).
func putSockaddr6(b []byte, a netip.Addr) {
	b[0] = darwinSizeofSockaddr6
	b[1] = darwinAFInet6
	a16 := a.As16()
	copy(b[8:24], a16[:])
}

// darwinIfreqFlags is struct ifreq for SIOCSIFFLAGS/SIOCGIFFLAGS: name, then short ifru_flags.
func darwinIfreqFlags(name string, flags uint16) ([]byte, error) {
	b := make([]byte, darwinSizeofIfreq)
	if err := putIfName(b, name); err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint16(b[darwinIFNAMSIZ:], flags)
	return b, nil
}

// darwinIfreqGetFlags reads ifru_flags back from a SIOCGIFFLAGS answer.
func darwinIfreqGetFlags(b []byte) uint16 {
	if len(b) < darwinIFNAMSIZ+2 {
		return 0
	}
	return binary.LittleEndian.Uint16(b[darwinIFNAMSIZ:])
}

// darwinAliasreq6 is struct in6_aliasreq for SIOCAIFADDR_IN6: addr/prefixLen on name, no
// destination (utun is point-to-point, but the peer is reached through the prefix and the
// host route), IN6_IFF_NODAD so the address is usable at once (as IFA_F_NODAD on Linux), and
// infinite valid and preferred lifetimes.
func darwinAliasreq6(name string, addr netip.Addr, prefixLen int) ([]byte, error) {
	if !addr.Is6() || addr.Is4In6() {
		return nil, fmt.Errorf("address %v is not IPv6", addr)
	}
	if prefixLen < 0 || prefixLen > 128 {
		return nil, fmt.Errorf("prefix length %d outside [0, 128]", prefixLen)
	}
	b := make([]byte, darwinSizeofAliasreq6)
	if err := putIfName(b, name); err != nil {
		return nil, err
	}
	putSockaddr6(b[16:], addr) // ifra_addr
	// ifra_dstaddr at 44 stays zero (sin6_len 0: no destination).
	mask := netip.PrefixFrom(netip.IPv6Unspecified(), prefixLen)
	putSockaddr6(b[72:], prefixMask6(mask.Bits())) // ifra_prefixmask
	binary.LittleEndian.PutUint32(b[100:], darwinIN6IFFNoDAD)
	// ifra_lifetime at 104: ia6t_expire and ia6t_preferred (time_t, 0 = computed by the
	// kernel from the lifetimes), then ia6t_vltime and ia6t_pltime.
	binary.LittleEndian.PutUint32(b[120:], darwinInfiniteLifetime)
	binary.LittleEndian.PutUint32(b[124:], darwinInfiniteLifetime)
	return b, nil
}

// darwinIn6Ifreq is struct in6_ifreq for SIOCDIFADDR_IN6: name and ifru_addr.
func darwinIn6Ifreq(name string, addr netip.Addr) ([]byte, error) {
	if !addr.Is6() || addr.Is4In6() {
		return nil, fmt.Errorf("address %v is not IPv6", addr)
	}
	b := make([]byte, darwinSizeofIn6Ifreq)
	if err := putIfName(b, name); err != nil {
		return nil, err
	}
	putSockaddr6(b[16:], addr.WithZone(""))
	return b, nil
}

// prefixMask6 is the IPv6 netmask of bits ones.
func prefixMask6(bits int) netip.Addr {
	var m [16]byte
	for i := 0; i < bits && i < 128; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(m)
}

// darwinRouteMsg is a routing-socket message (RTM_ADD or RTM_DELETE) for the host route
// dst/128 through the interface ifName (index ifIndex): an rt_msghdr, then RTA_DST as a
// sockaddr_in6 and RTA_GATEWAY as the interface's sockaddr_dl, which is what
// `route add -inet6 -host DST -interface IFNAME` sends (a direct route, no RTF_GATEWAY).
func darwinRouteMsg(typ uint8, seq int32, pid int32, ifIndex int, ifName string, dst netip.Addr) ([]byte, error) {
	if typ != darwinRTMAdd && typ != darwinRTMDelete {
		return nil, fmt.Errorf("route message type %d is not RTM_ADD or RTM_DELETE", typ)
	}
	if !dst.Is6() || dst.Is4In6() {
		return nil, fmt.Errorf("route destination %v is not IPv6", dst)
	}
	if ifIndex <= 0 || ifIndex > 0xffff {
		return nil, fmt.Errorf("interface index %d outside [1, 65535]", ifIndex)
	}
	if len(ifName) == 0 || len(ifName) > 12 {
		return nil, fmt.Errorf("interface name %q does not fit sockaddr_dl's sdl_data", ifName)
	}
	n := darwinSizeofRtMsghdr + darwinSizeofSockaddr6 + darwinSizeofSockaddrDL
	b := make([]byte, n)
	binary.LittleEndian.PutUint16(b[0:], uint16(n)) // rtm_msglen
	b[2] = darwinRTMVersion                         // rtm_version
	b[3] = typ                                      // rtm_type
	binary.LittleEndian.PutUint16(b[4:], uint16(ifIndex))
	binary.LittleEndian.PutUint32(b[8:], darwinRTFUp|darwinRTFHost|darwinRTFStatic) // rtm_flags
	binary.LittleEndian.PutUint32(b[12:], darwinRTADst|darwinRTAGateway)            // rtm_addrs
	binary.LittleEndian.PutUint32(b[16:], uint32(pid))                              // rtm_pid
	binary.LittleEndian.PutUint32(b[20:], uint32(seq))                              // rtm_seq
	// rtm_errno, rtm_use, rtm_inits and rtm_rmx stay zero.
	putSockaddr6(b[darwinSizeofRtMsghdr:], dst)
	dl := b[darwinSizeofRtMsghdr+darwinSizeofSockaddr6:]
	dl[0] = darwinSizeofSockaddrDL
	dl[1] = darwinAFLink
	binary.LittleEndian.PutUint16(dl[2:], uint16(ifIndex)) // sdl_index
	dl[4] = darwinIFTOther                                 // sdl_type
	dl[5] = byte(len(ifName))                              // sdl_nlen
	copy(dl[8:], ifName)                                   // sdl_data: the name, no link address
	return b, nil
}

// ifaceAddrs is one interface and its IPv6 addresses, as net.Interfaces reports them.
type ifaceAddrs struct {
	Name  string
	Addrs []netip.Prefix
}

// staleAddr is an address to take off an interface before configuring a new tunnel.
type staleAddr struct {
	Iface string
	Addr  netip.Addr
}

// staleUtunAddrs finds, on utun interfaces other than own, the addresses inside the new
// tunnel's prefix. They are left by an earlier tunnel to the same device (iosmuxd run in
// parallel, or another tool's tunnel) and would make macOS choose the wrong interface or
// source address for the device. A utun itself cannot be stale after its owner exits: the
// kernel destroys it, with its addresses and routes, when the last descriptor of its control
// socket closes.
func staleUtunAddrs(ifaces []ifaceAddrs, own string, prefix netip.Prefix) []staleAddr {
	var out []staleAddr
	prefix = prefix.Masked()
	for _, ifi := range ifaces {
		if ifi.Name == own || !strings.HasPrefix(ifi.Name, "utun") {
			continue
		}
		for _, a := range ifi.Addrs {
			if a.Addr().Is6() && prefix.Contains(a.Addr().WithZone("")) {
				out = append(out, staleAddr{Iface: ifi.Name, Addr: a.Addr().WithZone("")})
			}
		}
	}
	return out
}
