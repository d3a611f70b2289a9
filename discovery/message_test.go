package discovery

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/iosmux/iosmux/internal/peertest"
)

// response builds a response with the given answers.
func response(t testing.TB, rrs ...dns.RR) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.Response = true
	m.Answer = rrs
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestParseRefusesHostileHeaders: an oversized message, a short one, garbage, and a header
// claiming more than MaxRecords records (refused before decoding) all fail.
func TestParseRefusesHostileHeaders(t *testing.T) {
	many := make([]byte, 12)
	binary.BigEndian.PutUint16(many[6:], MaxRecords+1) // ANCOUNT, no records follow
	if _, err := Parse(many); err != ErrTooManyRecords {
		t.Fatalf("65 claimed records: %v", err)
	}
	for name, b := range map[string][]byte{
		"oversized": make([]byte, MaxPacket+1),
		"short":     {0, 1, 2},
		"truncated": response(t, rr(t, "a.local. 120 IN TXT \"x=1\""))[:20],
		"loop": {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, // one answer whose name points at itself
			0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 120, 0, 2, 0xc0, 12},
	} {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := Parse(response(t, rr(t, "_remoted._tcp.local. 120 IN PTR x._remoted._tcp.local."))); err != nil {
		t.Fatalf("valid response: %v", err)
	}
}

// TestInstanceNames: instance labels with dots, spaces and bytes survive escaping; a name of
// another type or with two labels is not an instance.
func TestInstanceNames(t *testing.T) {
	for _, in := range []string{"iPhone", "Jane's iPhone", "a.b", `back\slash`, "\x01\xff", "x (2)"} {
		name := escapeLabel(in) + "." + TypeManualPairing
		if _, err := dns.NewRR(name + " 120 IN TXT \"\""); err != nil {
			t.Fatalf("%q: escaped name %q refused: %v", in, name, err)
		}
		if got := Instance(name, TypeManualPairing); got != in {
			t.Errorf("Instance(%q) = %q, want %q", name, got, in)
		}
	}
	for _, name := range []string{"x._remoted._tcp.local.", "a.b." + TypeRemotePairing, TypeRemotePairing, "." + TypeRemotePairing} {
		if got := Instance(name, TypeRemotePairing); got != "" {
			t.Errorf("Instance(%q) = %q, want none", name, got)
		}
	}
}

// TestCacheBounds: a flood of services from many senders stops at MaxServices for that type
// and leaves room for other types; one sender stops at MaxPerSource; a host's addresses stop
// at MaxAddrs; addresses of hosts no SRV names are not kept; a goodbye (TTL 0) removes a
// service; TTLs are capped.
func TestCacheBounds(t *testing.T) {
	c := newCache()
	now := time.Now()
	types := []string{TypeRemotePairing, TypeManualPairing, TypeRemoted}
	advert := func(typ string, i int, src netip.Addr) bool {
		inst := fmt.Sprintf("d%d.%s", i, typ)
		m := new(dns.Msg)
		m.Response = true
		m.Answer = []dns.RR{rr(t, typ+" 120 IN PTR "+inst), rr(t, inst+" 120 IN SRV 0 0 49152 h.local."),
			rr(t, inst+` 120 IN TXT "identifier=x"`)}
		return c.add(m, 1, src, types, now)
	}
	full := false
	for i := range MaxServices + 10 { // spoofed senders
		full = advert(TypeManualPairing, i, netip.AddrFrom16([16]byte{0xfe, 0x80, 14: byte(i >> 8), 15: byte(i)})) || full
	}
	if !full || c.perType[TypeManualPairing] != MaxServices {
		t.Fatalf("full=%v, %d manual-pairing services kept, want %d", full, c.perType[TypeManualPairing], MaxServices)
	}
	one := netip.MustParseAddr("fe80::99")
	for i := range MaxPerSource + 10 { // one sender
		advert(TypeRemoted, i, one)
	}
	if c.perType[TypeRemoted] != MaxPerSource {
		t.Fatalf("%d services kept from one sender, want %d", c.perType[TypeRemoted], MaxPerSource)
	}
	if advert(TypeRemotePairing, 0, netip.MustParseAddr("fe80::2")) || c.perType[TypeRemotePairing] != 1 {
		t.Fatal("no room for a phone of another type after a flood")
	}
	m := new(dns.Msg)
	m.Response = true
	for i := range 20 {
		m.Extra = append(m.Extra, rr(t, fmt.Sprintf("h.local. 5000000 IN AAAA fe80::%x", i+1)))
	}
	m.Extra = append(m.Extra, rr(t, "stranger.local. 120 IN A 10.0.0.1"))
	c.add(m, 1, netip.Addr{}, types, now)
	if got := len(c.addr[ckey(1, "h.local.")]); got != MaxAddrs {
		t.Fatalf("%d addresses kept for one host, want %d", got, MaxAddrs)
	}
	if _, ok := c.addr[ckey(1, "stranger.local.")]; ok {
		t.Fatal("kept the address of a host no service names")
	}
	for _, exp := range c.addr[ckey(1, "h.local.")] {
		if exp.After(now.Add(MaxTTL * time.Second)) {
			t.Fatalf("TTL not capped: expires %v", exp.Sub(now))
		}
	}
	total := MaxServices + MaxPerSource + 1
	svcs := c.resolved(func(int) string { return "eth9" })
	if len(svcs) != total {
		t.Fatalf("%d services resolved, want %d", len(svcs), total)
	}
	for _, s := range svcs {
		if s.Addrs[0].Zone() != "eth9" || s.Port != 49152 || s.TXT["identifier"] != "x" {
			t.Fatalf("resolved %+v", s)
		}
		break
	}
	bye := new(dns.Msg)
	bye.Response = true
	bye.Answer = []dns.RR{rr(t, TypeRemotePairing+" 0 IN PTR d0."+TypeRemotePairing)}
	c.add(bye, 1, netip.Addr{}, types, now)
	if len(c.resolved(func(int) string { return "eth9" })) != total-1 || c.perType[TypeRemotePairing] != 0 {
		t.Fatal("goodbye did not remove the service")
	}
	c.expire(now.Add((MaxTTL + 1) * time.Second))
	if len(c.ptr)+len(c.srv)+len(c.txt)+len(c.addr)+len(c.perType)+len(c.perSrc) != 0 {
		t.Fatal("records outlived MaxTTL")
	}
}

// TestParseTXT: keys are case-insensitive, the first wins, at most MaxTXT strings are read.
func TestParseTXT(t *testing.T) {
	var in []string
	for i := range 100 {
		in = append(in, fmt.Sprintf("k%d=%d", i, i))
	}
	in = append([]string{"AuthTag=abc", "authtag=zzz", "flag", "=nokey"}, in...)
	got := parseTXT(in)
	if got["authtag"] != "abc" || len(got) > MaxTXT {
		t.Fatalf("parseTXT: %d keys, authtag %q", len(got), got["authtag"])
	}
	if v, ok := got["flag"]; !ok || v != "" {
		t.Fatal("a key without = is lost")
	}
}

// FuzzParse: any datagram goes through the browser's whole parse path (header bounds, decode,
// cache, resolve), and a query through the responder's answer path, without panicking and with
// allocation bounded by its size.
func FuzzParse(f *testing.F) {
	f.Add(response(f, rr(f, TypeRemoted+" 120 IN PTR x."+TypeRemoted), rr(f, "x."+TypeRemoted+" 120 IN SRV 0 0 58783 h.local."),
		rr(f, "h.local. 120 IN AAAA fe80::1"), rr(f, "x."+TypeRemoted+` 120 IN TXT "a=b"`)))
	f.Add(response(f, rr(f, TypeManualPairing+" 120 IN PTR a\\.b."+TypeManualPairing)))
	q, _ := Query(TypeRemoted, TypeRemotePairing)
	f.Add(q)
	f.Fuzz(func(t *testing.T, b []byte) {
		peertest.BoundAllocs(t, len(b), 512, func() {
			m, err := Parse(b)
			if err != nil {
				return
			}
			if n := len(m.Question) + len(m.Answer) + len(m.Ns) + len(m.Extra); n > MaxRecords {
				t.Fatalf("%d records decoded", n)
			}
			if !m.Response {
				r := &Responder{host: "h.local.", addrs: []netip.Addr{netip.MustParseAddr("fe80::2")},
					adverts: []Advert{{Type: TypeRemoted, Instance: "x", Port: 58783}, {Type: TypeManualPairing, Instance: "a.b", Port: 1}}}
				if b, err := r.response(m.Question, RecordTTL); err == nil && len(b) > MaxPacket {
					t.Fatalf("%d-byte answer", len(b))
				}
			}
			c := newCache()
			c.add(m, 1, netip.MustParseAddr("fe80::2"), []string{TypeRemoted, TypeRemotePairing, TypeManualPairing}, time.Now())
			for _, s := range c.resolved(func(int) string { return "if0" }) {
				if len(s.Addrs) > MaxAddrs || len(s.TXT) > MaxTXT {
					t.Fatalf("resolved %+v", s)
				}
			}
		})
	})
}
