package discovery

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Service is one resolved service instance on one interface.
type Service struct {
	Type     string // "_remoted._tcp.local."
	Instance string // the instance label, unescaped
	Iface    string // the interface it was seen on
	Host     string // the SRV target
	Port     uint16
	// Addrs are the host's addresses (link-local IPv6 with %Iface), IPv4 first; if the
	// responder sent none, the packet's source address.
	Addrs []netip.Addr
	TXT   TXT
}

// Key names the service across updates: interface, type and instance.
func (s Service) Key() string {
	return s.Iface + "|" + strings.ToLower(s.Type) + "|" + strings.ToLower(s.Instance)
}

// AddrPort is where the service is: its first address and its port.
func (s Service) AddrPort() (netip.AddrPort, bool) {
	if len(s.Addrs) == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(s.Addrs[0], s.Port), true
}

func (s Service) equal(o Service) bool {
	if s.Key() != o.Key() || s.Host != o.Host || s.Port != o.Port || !slices.Equal(s.Addrs, o.Addrs) || len(s.TXT) != len(o.TXT) {
		return false
	}
	for k, v := range s.TXT {
		if w, ok := o.TXT[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// cache holds the records of a browser's services, keyed "ifindex|lower-case name", each map
// bounded by MaxServices and every record expiring after min(TTL, MaxTTL).
type cache struct {
	ptr     map[string]ptrEntry // "idx|instance fqdn" → the type it belongs to
	perType map[string]int      // PTR entries by type
	perSrc  map[string]int      // PTR entries by type and sender, "type|addr"
	srv     map[string]srvEntry
	txt     map[string]txtEntry
	addr    map[string]map[netip.Addr]time.Time // "idx|host" → addresses
	src     map[string]netip.Addr               // "idx|instance fqdn" → last responder address
}

type ptrEntry struct {
	typ, name string
	idx       int
	src       netip.Addr
	exp       time.Time
}

func srcKey(typ string, src netip.Addr) string { return typ + "|" + src.String() }

// putPtr records a PTR unless its type or its sender has no room left; it reports false then.
// A PTR already kept is only refreshed (it stays counted for the sender that brought it).
func (c *cache) putPtr(k string, e ptrEntry) bool {
	if old, ok := c.ptr[k]; ok {
		old.exp = e.exp
		c.ptr[k] = old
		return true
	}
	if c.perType[e.typ] >= MaxServices || c.perSrc[srcKey(e.typ, e.src)] >= MaxPerSource {
		return false
	}
	c.ptr[k] = e
	c.perType[e.typ]++
	c.perSrc[srcKey(e.typ, e.src)]++
	return true
}

func (c *cache) delPtr(k string, e ptrEntry) {
	delete(c.ptr, k)
	if c.perType[e.typ]--; c.perType[e.typ] <= 0 {
		delete(c.perType, e.typ)
	}
	if sk := srcKey(e.typ, e.src); c.perSrc[sk] <= 1 {
		delete(c.perSrc, sk)
	} else {
		c.perSrc[sk]--
	}
}

type srvEntry struct {
	target string
	port   uint16
	exp    time.Time
}

type txtEntry struct {
	txt TXT
	exp time.Time
}

func newCache() *cache {
	return &cache{ptr: map[string]ptrEntry{}, perType: map[string]int{}, perSrc: map[string]int{}, srv: map[string]srvEntry{}, txt: map[string]txtEntry{},
		addr: map[string]map[netip.Addr]time.Time{}, src: map[string]netip.Addr{}}
}

func ckey(idx int, name string) string {
	return strconv.Itoa(idx) + "|" + strings.ToLower(dns.Fqdn(name))
}

func expiry(now time.Time, ttl uint32) time.Time {
	return now.Add(time.Duration(min(ttl, MaxTTL)) * time.Second)
}

// add takes the records of one response that belong to types; it reports whether any record
// was dropped because the cache is full.
func (c *cache) add(m *dns.Msg, idx int, src netip.Addr, types []string, now time.Time) (full bool) {
	rrs := append(append([]dns.RR{}, m.Answer...), m.Extra...)
	typeOf := func(instance string) string {
		for _, t := range types {
			if Instance(instance, t) != "" {
				return t
			}
		}
		return ""
	}
	for _, rr := range rrs {
		p, ok := rr.(*dns.PTR)
		if !ok || p.Hdr.Class&0x7fff != dns.ClassINET {
			continue
		}
		for _, t := range types {
			if !strings.EqualFold(p.Hdr.Name, t) || Instance(p.Ptr, t) == "" {
				continue
			}
			k := ckey(idx, p.Ptr)
			if old, ok := c.ptr[k]; ok && p.Hdr.Ttl == 0 {
				c.delPtr(k, old)
			}
			if p.Hdr.Ttl == 0 {
				continue
			}
			if !c.putPtr(k, ptrEntry{typ: t, name: p.Ptr, idx: idx, src: src, exp: expiry(now, p.Hdr.Ttl)}) {
				full = true
			}
		}
	}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Class&0x7fff != dns.ClassINET {
			continue
		}
		switch r := rr.(type) {
		case *dns.SRV:
			if typeOf(h.Name) == "" {
				continue
			}
			k := ckey(idx, h.Name)
			if h.Ttl == 0 {
				delete(c.srv, k)
				continue
			}
			if _, ok := c.srv[k]; !ok && len(c.srv) >= MaxServices*len(types) {
				full = true
				continue
			}
			c.srv[k] = srvEntry{target: r.Target, port: r.Port, exp: expiry(now, h.Ttl)}
			if src.IsValid() {
				if _, ok := c.src[k]; ok || len(c.src) < MaxServices*len(types) {
					c.src[k] = src
				}
			}
		case *dns.TXT:
			if typeOf(h.Name) == "" {
				continue
			}
			k := ckey(idx, h.Name)
			if h.Ttl == 0 {
				delete(c.txt, k)
				continue
			}
			if _, ok := c.txt[k]; !ok && len(c.txt) >= MaxServices*len(types) {
				full = true
				continue
			}
			c.txt[k] = txtEntry{txt: parseTXT(r.Txt), exp: expiry(now, h.Ttl)}
		}
	}
	targets := map[string]bool{}
	for k, s := range c.srv {
		if strings.HasPrefix(k, strconv.Itoa(idx)+"|") {
			targets[ckey(idx, s.target)] = true
		}
	}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype != dns.TypeA && h.Rrtype != dns.TypeAAAA || h.Class&0x7fff != dns.ClassINET {
			continue
		}
		k := ckey(idx, h.Name)
		if !targets[k] {
			continue
		}
		a, ok := addrOf(rr, "")
		if !ok {
			continue
		}
		set := c.addr[k]
		if h.Ttl == 0 {
			delete(set, a)
			continue
		}
		if set == nil {
			if len(c.addr) >= MaxServices*len(types) {
				full = true
				continue
			}
			set = map[netip.Addr]time.Time{}
			c.addr[k] = set
		}
		if _, ok := set[a]; !ok && len(set) >= MaxAddrs {
			full = true
			continue
		}
		set[a] = expiry(now, h.Ttl)
	}
	return full
}

// expire drops records past their lifetime.
func (c *cache) expire(now time.Time) {
	for k, e := range c.ptr {
		if now.After(e.exp) {
			c.delPtr(k, e)
		}
	}
	for k, e := range c.srv {
		if now.After(e.exp) {
			delete(c.srv, k)
			delete(c.src, k)
		}
	}
	for k, e := range c.txt {
		if now.After(e.exp) {
			delete(c.txt, k)
		}
	}
	for k, set := range c.addr {
		for a, exp := range set {
			if now.After(exp) {
				delete(set, a)
			}
		}
		if len(set) == 0 {
			delete(c.addr, k)
		}
	}
}

// forget drops everything learnt on an interface that went away.
func (c *cache) forget(idx int) {
	p := strconv.Itoa(idx) + "|"
	for k, e := range c.ptr {
		if e.idx == idx {
			c.delPtr(k, e)
		}
	}
	for _, m := range []any{c.srv, c.txt, c.addr, c.src} {
		switch m := m.(type) {
		case map[string]ptrEntry:
			deleteKeys(m, p)
		case map[string]srvEntry:
			deleteKeys(m, p)
		case map[string]txtEntry:
			deleteKeys(m, p)
		case map[string]map[netip.Addr]time.Time:
			deleteKeys(m, p)
		case map[string]netip.Addr:
			deleteKeys(m, p)
		}
	}
}

func deleteKeys[V any](m map[string]V, prefix string) {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			delete(m, k)
		}
	}
}

// resolved lists the services whose PTR, SRV and an address (or the responder's) are known;
// name gives an interface index's name.
func (c *cache) resolved(name func(int) string) map[string]Service {
	out := map[string]Service{}
	for k, p := range c.ptr {
		s, ok := c.srv[k]
		if !ok {
			continue
		}
		zone := name(p.idx)
		svc := Service{Type: p.typ, Instance: Instance(p.name, p.typ), Iface: zone, Host: s.target, Port: s.port, TXT: TXT{}}
		if t, ok := c.txt[k]; ok {
			svc.TXT = t.txt
		}
		for a := range c.addr[ckey(p.idx, s.target)] {
			if a.Is6() && a.IsLinkLocalUnicast() {
				a = a.WithZone(zone)
			}
			svc.Addrs = append(svc.Addrs, a)
		}
		if len(svc.Addrs) == 0 {
			if a, ok := c.src[k]; ok {
				if a.Is6() && a.IsLinkLocalUnicast() {
					a = a.WithZone(zone)
				}
				svc.Addrs = []netip.Addr{a}
			}
		}
		if len(svc.Addrs) == 0 {
			continue
		}
		slices.SortFunc(svc.Addrs, func(a, b netip.Addr) int {
			if a.Is4() != b.Is4() {
				if a.Is4() {
					return -1
				}
				return 1
			}
			return a.Compare(b)
		})
		out[svc.Key()] = svc
	}
	return out
}
