package discovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Bounds on what one packet and one browser may hold.
const (
	// MaxPacket is the largest mDNS message read or sent (RFC 6762 §17: 9000 bytes).
	MaxPacket = 9000
	// MaxRecords bounds the questions and records one message may claim.
	MaxRecords = 64
	// MaxTXT bounds the key=value strings kept from one TXT record.
	MaxTXT = 32
	// MaxServices bounds the services of one type a browser keeps, over all interfaces (a
	// flood of one type leaves room for the others).
	MaxServices = 256
	// MaxPerSource bounds the services of one type kept from one sender address (a flood from
	// one host leaves room for the others on the link).
	MaxPerSource = 32
	// MaxAddrs bounds the addresses kept for one host name.
	MaxAddrs = 8
	// MaxTTL caps a record's lifetime, whatever it claims (75 minutes, RFC 6762 §10's longest).
	MaxTTL = 4500
)

// Service types of the spec (discovery.md §1), fully qualified.
const (
	TypeRemoted       = "_remoted._tcp.local."
	TypeRemotePairing = "_remotepairing._tcp.local."
	TypeManualPairing = "_remotepairing-manual-pairing._tcp.local."
)

// ErrTooManyRecords refuses a message whose header claims more than MaxRecords records.
var ErrTooManyRecords = errors.New("mdns: message claims too many records")

// Parse decodes one mDNS message, refusing oversized ones and ones whose header claims more
// than MaxRecords records before decoding them.
func Parse(b []byte) (*dns.Msg, error) {
	if len(b) > MaxPacket {
		return nil, fmt.Errorf("mdns: %d-byte message, max %d", len(b), MaxPacket)
	}
	if len(b) < 12 {
		return nil, errors.New("mdns: short message")
	}
	n := 0
	for i := 4; i < 12; i += 2 {
		n += int(binary.BigEndian.Uint16(b[i:]))
	}
	if n > MaxRecords {
		return nil, ErrTooManyRecords
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("mdns: %w", err)
	}
	return m, nil
}

// Query is a multicast question (QU bit clear) for the PTR records of the service types.
func Query(types ...string) ([]byte, error) {
	m := new(dns.Msg)
	for _, t := range types {
		m.Question = append(m.Question, dns.Question{Name: dns.Fqdn(t), Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	}
	return m.Pack()
}

// TXT is a service's TXT record as key=value pairs; a key without '=' has the value "".
type TXT map[string]string

// parseTXT keeps the first MaxTXT strings, keys lower-cased (RFC 6763 §6.4: keys are
// case-insensitive), the first of each key winning.
func parseTXT(txt []string) TXT {
	out := TXT{}
	for i, s := range txt {
		if i == MaxTXT {
			break
		}
		k, v, _ := strings.Cut(s, "=")
		k = strings.ToLower(k)
		if _, dup := out[k]; !dup && k != "" {
			out[k] = v
		}
	}
	return out
}

// Strings lists the pairs as TXT strings, in the order of keys.
func (t TXT) Strings(keys ...string) []string {
	var out []string
	for _, k := range keys {
		if v, ok := t[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// Instance is the instance label of a service name ("name._type._tcp.local." with type
// "_type._tcp.local."), unescaped; "" if name is not of that type.
func Instance(name, typ string) string {
	n, t := strings.ToLower(name), strings.ToLower(typ)
	if !strings.HasSuffix(n, "."+t) {
		return ""
	}
	label := name[:len(name)-len(typ)-1]
	s, ok := unescapeLabel(label)
	if !ok || s == "" {
		return ""
	}
	return s
}

// unescapeLabel undoes miekg/dns's presentation escapes (\. and \DDD).
func unescapeLabel(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			if c == '.' {
				return "", false // an unescaped dot: more than one label
			}
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v > 255 {
				return "", false
			}
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String(), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// escapeLabel makes an instance label a presentation-format label for miekg/dns.
func escapeLabel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' || c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@' || c == '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x21 || c > 0x7e:
			fmt.Fprintf(&b, `\%03d`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// addrOf is the address of an A or AAAA record; a link-local one gets zone.
func addrOf(rr dns.RR, zone string) (netip.Addr, bool) {
	var a netip.Addr
	var ok bool
	switch r := rr.(type) {
	case *dns.A:
		a, ok = netip.AddrFromSlice(r.A.To4())
	case *dns.AAAA:
		a, ok = netip.AddrFromSlice(r.AAAA.To16())
	}
	if !ok || !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return netip.Addr{}, false
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		a = a.WithZone(zone)
	}
	return a, true
}
