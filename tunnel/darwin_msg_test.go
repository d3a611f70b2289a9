package tunnel

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// layout decodes a layout written as annotated hex: everything after '#' on a line is a comment,
// whitespace is ignored.
func layout(t *testing.T, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad test layout: %v", err)
	}
	return b
}

// TestDarwinIoctlNumbers recomputes the request numbers from sys/ioccom.h's _IOW/_IOWR and
// checks them against the values the macOS SDK defines (SIOCSIFFLAGS and SIOCGIFFLAGS as
// x/sys/unix's zerrors_darwin_*.go has them; the IN6 ones from netinet6/in6_var.h's sizes).
func TestDarwinIoctlNumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"SIOCSIFFLAGS", darwinSIOCSIFFLAGS, 0x80206910},
		{"SIOCGIFFLAGS", darwinSIOCGIFFLAGS, 0xc0206911},
		{"SIOCAIFADDR_IN6", darwinSIOCAIFADDR_IN6, 0x8080691a},
		{"SIOCDIFADDR_IN6", darwinSIOCDIFADDR_IN6, 0x81206919},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// TestDarwinAliasreq6 pins struct in6_aliasreq (netinet6/in6_var.h) for fd7b:e5b:6f53::2/64.
func TestDarwinAliasreq6(t *testing.T) {
	got, err := darwinAliasreq6("utun7", netip.MustParseAddr("fd7b:e5b:6f53::2"), 64)
	if err != nil {
		t.Fatal(err)
	}
	want := layout(t, `
		7574756e37 0000000000000000000000           # ifra_name "utun7", NUL-padded to 16
		1c 1e 0000 00000000                         # ifra_addr: sin6_len 28, AF_INET6 30, port, flowinfo
		fd7b0e5b6f5300000000000000000002 00000000   #   sin6_addr, sin6_scope_id
		00 00 0000 00000000                         # ifra_dstaddr: empty
		00000000000000000000000000000000 00000000
		1c 1e 0000 00000000                         # ifra_prefixmask
		ffffffffffffffff0000000000000000 00000000   #   /64
		20000000                                    # ifra_flags: IN6_IFF_NODAD
		0000000000000000 0000000000000000           # ia6t_expire, ia6t_preferred (time_t)
		ffffffff ffffffff                           # ia6t_vltime, ia6t_pltime: ND6_INFINITE_LIFETIME
	`)
	if len(want) != 128 {
		t.Fatalf("test layout is %d bytes, struct in6_aliasreq is 128", len(want))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("in6_aliasreq:\n got %x\nwant %x", got, want)
	}
}

func TestDarwinAliasreq6PrefixLengths(t *testing.T) {
	for _, c := range []struct {
		bits int
		mask string
	}{{0, "::"}, {1, "8000::"}, {63, "ffff:ffff:ffff:fffe::"}, {65, "ffff:ffff:ffff:ffff:8000::"}, {128, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}} {
		b, err := darwinAliasreq6("utun0", netip.MustParseAddr("fd00::2"), c.bits)
		if err != nil {
			t.Fatal(err)
		}
		m := netip.AddrFrom16([16]byte(b[80:96]))
		if m != netip.MustParseAddr(c.mask) {
			t.Errorf("/%d: mask %v, want %s", c.bits, m, c.mask)
		}
	}
}

func TestDarwinBuildersRefuseBadInput(t *testing.T) {
	v6 := netip.MustParseAddr("fd00::1")
	for name, err := range map[string]error{
		"v4 address":    second(darwinAliasreq6("utun0", netip.MustParseAddr("10.0.0.1"), 64)),
		"v4-in-v6":      second(darwinAliasreq6("utun0", netip.MustParseAddr("::ffff:10.0.0.1"), 64)),
		"prefix 129":    second(darwinAliasreq6("utun0", v6, 129)),
		"prefix -1":     second(darwinAliasreq6("utun0", v6, -1)),
		"long name":     second(darwinAliasreq6("utun0123456789ab", v6, 64)),
		"empty name":    second(darwinAliasreq6("", v6, 64)),
		"NUL in name":   second(darwinIfreqFlags("ut\x00n", 1)),
		"ifreq6 v4":     second(darwinIn6Ifreq("utun0", netip.MustParseAddr("10.0.0.1"))),
		"route type":    second(darwinRouteMsg(4, 1, 1, 5, "utun0", v6)),
		"route v4":      second(darwinRouteMsg(darwinRTMAdd, 1, 1, 5, "utun0", netip.MustParseAddr("10.0.0.1"))),
		"route index 0": second(darwinRouteMsg(darwinRTMAdd, 1, 1, 0, "utun0", v6)),
		"route index":   second(darwinRouteMsg(darwinRTMAdd, 1, 1, 70000, "utun0", v6)),
		"route name":    second(darwinRouteMsg(darwinRTMAdd, 1, 1, 5, "utun0123456789", v6)),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func second(_ []byte, err error) error { return err }

// TestDarwinIfreqFlags pins struct ifreq (net/if.h) with ifru_flags = IFF_UP.
func TestDarwinIfreqFlags(t *testing.T) {
	got, err := darwinIfreqFlags("utun12", darwinIFFUp|0x8010)
	if err != nil {
		t.Fatal(err)
	}
	want := layout(t, `
		7574756e3132 00000000000000000000   # ifr_name "utun12"
		1180 0000000000000000000000000000   # ifru_flags 0x8011 (short, little-endian), rest of the union
	`)
	if !bytes.Equal(got, want) {
		t.Errorf("ifreq:\n got %x\nwant %x", got, want)
	}
	if f := darwinIfreqGetFlags(got); f != 0x8011 {
		t.Errorf("flags read back %#x", f)
	}
	if f := darwinIfreqGetFlags(got[:10]); f != 0 {
		t.Errorf("short ifreq read as flags %#x", f)
	}
}

// TestDarwinIn6Ifreq pins struct in6_ifreq (netinet6/in6_var.h) for SIOCDIFADDR_IN6.
func TestDarwinIn6Ifreq(t *testing.T) {
	got, err := darwinIn6Ifreq("utun3", netip.MustParseAddr("fd7b:e5b:6f53::2%utun3"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 288)
	copy(want, layout(t, `
		7574756e33 0000000000000000000000          # ifr_name "utun3"
		1c 1e 0000 00000000                        # ifr_addr
		fd7b0e5b6f5300000000000000000002 00000000  #   address (zone dropped), scope 0
	`))
	if !bytes.Equal(got, want) {
		t.Errorf("in6_ifreq:\n got %x\nwant %x", got, want)
	}
}

// TestDarwinRouteMsg pins an RTM_ADD for fd7b:e5b:6f53::1/128 on utun4 (index 23): struct
// rt_msghdr (net/route.h), then RTA_DST as sockaddr_in6 and RTA_GATEWAY as sockaddr_dl
// (net/if_dl.h).
func TestDarwinRouteMsg(t *testing.T) {
	got, err := darwinRouteMsg(darwinRTMAdd, 7, 4242, 23, "utun4", netip.MustParseAddr("fd7b:e5b:6f53::1"))
	if err != nil {
		t.Fatal(err)
	}
	want := layout(t, `
		8c00 05 01       # rtm_msglen 140, rtm_version 5, rtm_type RTM_ADD
		1700 0000        # rtm_index 23, padding to the int
		05080000         # rtm_flags RTF_UP|RTF_HOST|RTF_STATIC
		03000000         # rtm_addrs RTA_DST|RTA_GATEWAY
		92100000         # rtm_pid 4242
		07000000         # rtm_seq 7
		00000000         # rtm_errno
		00000000         # rtm_use
		00000000         # rtm_inits
		00000000000000000000000000000000000000000000000000000000 # rtm_rmx: 14 u_int32_t
		00000000000000000000000000000000000000000000000000000000
		1c 1e 0000 00000000                          # RTA_DST sockaddr_in6
		fd7b0e5b6f5300000000000000000001 00000000
		14 12 1700 01 05 00 00                       # RTA_GATEWAY sockaddr_dl: len 20, AF_LINK, index 23, IFT_OTHER, nlen 5
		7574756e34 00000000000000                    #   sdl_data "utun4"
	`)
	if len(want) != 140 {
		t.Fatalf("test layout is %d bytes", len(want))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("route message:\n got %x\nwant %x", got, want)
	}
	del, err := darwinRouteMsg(darwinRTMDelete, 8, 4242, 23, "utun4", netip.MustParseAddr("fd7b:e5b:6f53::1"))
	if err != nil {
		t.Fatal(err)
	}
	if del[3] != darwinRTMDelete || del[20] != 8 || !bytes.Equal(del[24:], got[24:]) {
		t.Errorf("RTM_DELETE differs from RTM_ADD beyond type and seq: %x", del)
	}
}

func TestStaleUtunAddrs(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	ifaces := []ifaceAddrs{
		{Name: "lo0", Addrs: []netip.Prefix{p("fd7b:e5b:6f53::9/128")}},                    // not a utun
		{Name: "utun2", Addrs: []netip.Prefix{p("fe80::1/64"), p("fd7b:e5b:6f53::2/64")}},  // stale
		{Name: "utun3", Addrs: []netip.Prefix{p("fd00:1::2/64")}},                          // another tunnel
		{Name: "utun5", Addrs: []netip.Prefix{p("fd7b:e5b:6f53::2/64")}},                   // ours
		{Name: "utun6", Addrs: []netip.Prefix{p("10.0.0.1/24"), p("fd7b:e5b:6f53::7/64")}}, // stale
	}
	got := staleUtunAddrs(ifaces, "utun5", p("fd7b:e5b:6f53::2/64"))
	want := []staleAddr{{"utun2", netip.MustParseAddr("fd7b:e5b:6f53::2")}, {"utun6", netip.MustParseAddr("fd7b:e5b:6f53::7")}}
	if !slices.Equal(got, want) {
		t.Errorf("stale = %v, want %v", got, want)
	}
	if got := staleUtunAddrs(ifaces, "utun5", p("fd99::2/64")); len(got) != 0 {
		t.Errorf("stale in an unused prefix: %v", got)
	}
}
