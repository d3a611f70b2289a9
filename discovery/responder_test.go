package discovery

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestQueryWireFormat: a browse query asks PTR/IN for each type, multicast (QU bit clear),
// as a query with id 0.
func TestQueryWireFormat(t *testing.T) {
	b, err := Query(TypeRemoted, TypeManualPairing)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Response || m.Id != 0 || len(m.Question) != 2 {
		t.Fatalf("query %v", m)
	}
	for i, typ := range []string{TypeRemoted, TypeManualPairing} {
		q := m.Question[i]
		if q.Name != typ || q.Qtype != dns.TypePTR || q.Qclass != dns.ClassINET {
			t.Fatalf("question %d: %v", i, q)
		}
	}
}

// TestResponderAnswers: a PTR question gets the PTR answer with SRV, TXT and the host's
// addresses as additionals (cache-flush on unique records, not on the shared PTR); an SRV
// question gets the SRV and addresses; a question for something else gets nothing; the
// goodbye has TTL 0; and what it sends goes through the browser's cache to the service.
func TestResponderAnswers(t *testing.T) {
	r := &Responder{host: "phone.local.", addrs: []netip.Addr{netip.MustParseAddr("fe80::2"), netip.MustParseAddr("10.0.0.2")},
		adverts: []Advert{{Type: TypeRemotePairing, Instance: "My Phone", Port: 49152, TXT: []string{"identifier=X", "authTag=Y"}}}}
	name := `My\ Phone.` + TypeRemotePairing
	b, err := r.response([]dns.Question{{Name: TypeRemotePairing, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}, RecordTTL)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Response || len(m.Answer) != 1 || len(m.Extra) != 4 {
		t.Fatalf("response %v", m)
	}
	if p, ok := m.Answer[0].(*dns.PTR); !ok || p.Ptr != name || p.Hdr.Class != dns.ClassINET || p.Hdr.Ttl != RecordTTL {
		t.Fatalf("answer %v", m.Answer[0])
	}
	for _, rr := range m.Extra {
		if rr.Header().Class != dns.ClassINET|0x8000 {
			t.Fatalf("additional without cache-flush: %v", rr)
		}
	}
	c := newCache()
	c.add(m, 3, netip.Addr{}, []string{TypeRemotePairing}, time.Now())
	svcs := c.resolved(func(int) string { return "veth0" })
	var s Service
	for _, v := range svcs {
		s = v
	}
	if len(svcs) != 1 || s.Instance != "My Phone" || s.Port != 49152 || s.TXT["authtag"] != "Y" ||
		len(s.Addrs) != 2 || s.Addrs[0].String() != "10.0.0.2" || s.Addrs[1].String() != "fe80::2%veth0" {
		t.Fatalf("resolved %+v", svcs)
	}
	b, _ = r.response([]dns.Question{{Name: name, Qtype: dns.TypeSRV, Qclass: dns.ClassINET}}, RecordTTL)
	if m, _ = Parse(b); m == nil || len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSRV || len(m.Extra) != 2 {
		t.Fatalf("SRV response %v", m)
	}
	if _, err := r.response([]dns.Question{{Name: "_other._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}}, RecordTTL); err != errNoAnswer {
		t.Fatalf("answered a question for another type: %v", err)
	}
	b, _ = r.response(nil, 0)
	if m, _ = Parse(b); m == nil || len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 0 {
		t.Fatalf("goodbye %v", m)
	}
}
