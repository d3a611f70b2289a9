package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/iosmux/iosmux/internal/lograte"
)

// Advert is one service a responder announces.
type Advert struct {
	Type     string // fully qualified, "_remoted._tcp.local."
	Instance string // the instance label
	Port     uint16
	TXT      []string // "key=value" strings
}

// name is the advert's service instance name.
func (a Advert) name() string { return escapeLabel(a.Instance) + "." + dns.Fqdn(a.Type) }

// RecordTTL is the TTL of the responder's records (RFC 6762 §10: 120 s for host records,
// 75 min for others; one value keeps the simulator simple).
const RecordTTL = 120

// Responder answers mDNS queries for its adverts on one interface and announces them when it
// starts (twice, one second apart, RFC 6762 §8.3) and says goodbye (TTL 0) when it stops. It
// serves the simulator: it neither probes for name conflicts (§8.1) nor delays shared answers
// (§6), and always answers by multicast.
type Responder struct {
	ifi     net.Interface
	host    string // "<host>.local."
	adverts []Advert
	addrs   []netip.Addr
	c       *mconn
	log     *slog.Logger
}

// NewResponder opens the sockets and reads the interface's addresses now: a responder made
// inside a network namespace (on a thread that entered it) keeps working from any thread.
func NewResponder(ctx context.Context, iface, host string, adverts []Advert, log *slog.Logger) (*Responder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("mdns responder: %w", err)
	}
	as, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("mdns responder: addresses of %s: %w", iface, err)
	}
	r := &Responder{ifi: *ifi, host: escapeLabel(host) + ".local.", adverts: adverts, log: log}
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() {
			r.addrs = append(r.addrs, p.Addr())
		}
		if len(r.addrs) == MaxAddrs {
			break
		}
	}
	if len(r.addrs) == 0 {
		return nil, fmt.Errorf("mdns responder: %s has no address", iface)
	}
	if r.c, err = listen(ctx); err != nil {
		return nil, err
	}
	if err := r.c.join(ifi); err != nil {
		r.c.close()
		return nil, err
	}
	return r, nil
}

// Addrs are the addresses the responder announces.
func (r *Responder) Addrs() []netip.Addr { return r.addrs }

// Run answers until ctx ends, then says goodbye and closes the sockets.
func (r *Responder) Run(ctx context.Context) error {
	rl := lograte.New(r.log, RateLogInterval, 1)
	done := make(chan struct{})
	pkts := make(chan packet, 16)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		r.c.read(pkts, done)
	}()
	defer func() {
		if b, err := r.response(nil, 0); err == nil {
			r.c.send(&r.ifi, b)
		}
		close(done)
		r.c.close()
		<-readDone
	}()
	announce := func() {
		b, err := r.response(nil, RecordTTL)
		if err == nil {
			err = r.c.send(&r.ifi, b)
		}
		if err != nil {
			rl.Log(slog.LevelWarn, "announce", "mdns: announcement failed", "iface", r.ifi.Name, "err", err)
		}
	}
	announce()
	second := time.NewTimer(time.Second)
	defer second.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-second.C:
			announce()
		case p := <-pkts:
			m, err := Parse(p.data)
			if err != nil {
				rl.Log(slog.LevelDebug, "parse", "mdns: bad packet ignored", "from", p.src.Addr(), "err", err)
				continue
			}
			if m.Response || m.Opcode != dns.OpcodeQuery || len(m.Question) == 0 {
				continue
			}
			b, err := r.response(m.Question, RecordTTL)
			if errors.Is(err, errNoAnswer) {
				continue
			}
			if err == nil {
				err = r.c.send(&r.ifi, b)
			}
			if err != nil {
				rl.Log(slog.LevelDebug, "answer", "mdns: answer failed", "err", err)
			}
		}
	}
}

var errNoAnswer = errors.New("no answer")

// sameName compares two names in presentation form as DNS does: by their wire form, ASCII
// case-insensitively ("My\ Phone" and "my\032phone" are one name).
func sameName(a, b string) bool {
	var wa, wb [256]byte
	na, err := dns.PackDomainName(dns.Fqdn(a), wa[:], 0, nil, false)
	if err != nil {
		return false
	}
	nb, err := dns.PackDomainName(dns.Fqdn(b), wb[:], 0, nil, false)
	if err != nil {
		return false
	}
	if na != nb {
		return false
	}
	for i := range na { // length bytes are at most 63, below 'A': folding leaves them alone
		if lower(wa[i]) != lower(wb[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// response answers qs (nil: announce everything) with every record of the matching adverts:
// PTR in answers, SRV, TXT and the host's addresses in additionals.
func (r *Responder) response(qs []dns.Question, ttl uint32) ([]byte, error) {
	m := new(dns.Msg)
	m.Response, m.Authoritative, m.Compress = true, true, true
	hdr := func(name string, t uint16, cacheFlush bool) dns.RR_Header {
		class := uint16(dns.ClassINET)
		if cacheFlush {
			class |= 0x8000
		}
		return dns.RR_Header{Name: name, Rrtype: t, Class: class, Ttl: ttl}
	}
	wants := func(name string, t uint16) bool {
		if qs == nil {
			return true
		}
		for _, q := range qs {
			if sameName(q.Name, name) && (q.Qtype == t || q.Qtype == dns.TypeANY) {
				return true
			}
		}
		return false
	}
	hostAsked := false
	for _, a := range r.adverts {
		typ, name := dns.Fqdn(a.Type), a.name()
		ptr := &dns.PTR{Hdr: hdr(typ, dns.TypePTR, false), Ptr: name}
		srv := &dns.SRV{Hdr: hdr(name, dns.TypeSRV, true), Target: r.host, Port: a.Port}
		txt := &dns.TXT{Hdr: hdr(name, dns.TypeTXT, true), Txt: a.TXT}
		if len(txt.Txt) == 0 {
			txt.Txt = []string{""}
		}
		switch {
		case wants(typ, dns.TypePTR) || wants("_services._dns-sd._udp.local.", dns.TypePTR) && qs != nil:
			if qs != nil && !wants(typ, dns.TypePTR) { // the meta-query: name the type only
				m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr("_services._dns-sd._udp.local.", dns.TypePTR, false), Ptr: typ})
				continue
			}
			m.Answer = append(m.Answer, ptr)
			m.Extra = append(m.Extra, srv, txt)
			hostAsked = true
		case wants(name, dns.TypeSRV) || wants(name, dns.TypeTXT):
			if wants(name, dns.TypeSRV) {
				m.Answer = append(m.Answer, srv)
				hostAsked = true
			}
			if wants(name, dns.TypeTXT) {
				m.Answer = append(m.Answer, txt)
			}
		}
	}
	for _, a := range r.addrs {
		asked := hostAsked
		var rr dns.RR
		if a.Is4() {
			asked = asked || wants(r.host, dns.TypeA)
			rr = &dns.A{Hdr: hdr(r.host, dns.TypeA, true), A: a.AsSlice()}
		} else {
			asked = asked || wants(r.host, dns.TypeAAAA)
			rr = &dns.AAAA{Hdr: hdr(r.host, dns.TypeAAAA, true), AAAA: a.AsSlice()}
		}
		if asked {
			m.Extra = append(m.Extra, rr)
		}
	}
	if len(m.Answer) == 0 && len(m.Extra) == 0 {
		return nil, errNoAnswer
	}
	if len(m.Answer) == 0 { // only host records asked for: they are the answer
		m.Answer, m.Extra = m.Extra, nil
	}
	return m.Pack()
}
