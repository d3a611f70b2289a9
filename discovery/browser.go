package discovery

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/iosmux/iosmux/internal/lograte"
)

// Event is a service found (or changed: same Key, new address, port or TXT) or lost (goodbye
// or expiry).
type Event struct {
	Lost    bool
	Service Service
}

// Browser browses service types on a set of interfaces that may change.
type Browser struct {
	// Types are the fully qualified service types (TypeRemoted, ...).
	Types []string
	// Interfaces lists the interfaces to browse now; it is called every RescanInterval, so
	// interfaces that appear (a phone plugged in) are joined and queried.
	Interfaces func() ([]net.Interface, error)
	Log        *slog.Logger
	// QueryInterval is the longest wait between two queries on an interface: after joining one
	// the browser queries at once, then after 1 s, 2 s, 4 s, … up to it. Default 30 s.
	QueryInterval time.Duration
	// RescanInterval is how often Interfaces is called. Default 2 s.
	RescanInterval time.Duration
	// Rescan, when it signals, calls Interfaces at once (WatchLinks: a link appeared).
	Rescan <-chan struct{}
}

// Named lists the interfaces of the given names that exist and are up.
func Named(names []string) func() ([]net.Interface, error) {
	return func() ([]net.Interface, error) {
		var out []net.Interface
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil || ifi.Flags&net.FlagUp == 0 {
				continue
			}
			out = append(out, *ifi)
		}
		return out, nil
	}
}

// UpInterfaces lists every interface that is up, multicast-capable and not loopback (the
// default for Wi-Fi browsing).
func UpInterfaces() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagMulticast != 0 && ifi.Flags&net.FlagLoopback == 0 {
			out = append(out, ifi)
		}
	}
	return out, nil
}

// ifState is the query schedule of one joined interface.
type ifState struct {
	ifi  net.Interface
	next time.Time
	wait time.Duration
}

// Run browses until ctx ends, sending events to out; it fails only if it cannot open a
// socket.
func (b *Browser) Run(ctx context.Context, out chan<- Event) error {
	log := b.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rl := lograte.New(log, RateLogInterval, 1)
	maxWait := b.QueryInterval
	if maxWait <= 0 {
		maxWait = 30 * time.Second
	}
	rescan := b.RescanInterval
	if rescan <= 0 {
		rescan = 2 * time.Second
	}
	c, err := listen(ctx)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	pkts := make(chan packet, 16)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		c.read(pkts, done)
	}()
	defer func() {
		close(done)
		c.close()
		<-readDone
	}()
	query, err := Query(b.Types...)
	if err != nil {
		return err
	}
	cache := newCache()
	ifs := map[int]*ifState{}
	emitted := map[string]Service{}
	names := func(idx int) string {
		if s := ifs[idx]; s != nil {
			return s.ifi.Name
		}
		return ""
	}
	emit := func(ev Event) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// publish sends the differences between what was reported and what the cache resolves.
	publish := func() bool {
		now := cache.resolved(names)
		for k, s := range now {
			if old, ok := emitted[k]; ok && old.equal(s) {
				continue
			}
			emitted[k] = s
			log.Debug("mdns service found", "type", s.Type, "instance", s.Instance, "iface", s.Iface, "port", s.Port, "addrs", s.Addrs)
			if !emit(Event{Service: s}) {
				return false
			}
		}
		for k, s := range emitted {
			if _, ok := now[k]; ok {
				continue
			}
			delete(emitted, k)
			log.Debug("mdns service lost", "type", s.Type, "instance", s.Instance, "iface", s.Iface)
			if !emit(Event{Lost: true, Service: s}) {
				return false
			}
		}
		return true
	}
	scan := func() {
		list, err := b.Interfaces()
		if err != nil {
			rl.Log(slog.LevelWarn, "interfaces", "mdns: cannot list interfaces", "err", err)
			return
		}
		seen := map[int]bool{}
		for _, ifi := range list {
			seen[ifi.Index] = true
			if ifs[ifi.Index] != nil {
				continue
			}
			if err := c.join(&ifi); err != nil {
				rl.Log(slog.LevelDebug, "join "+ifi.Name, "mdns: cannot browse interface yet", "iface", ifi.Name, "err", err)
				continue
			}
			log.Debug("mdns browsing", "iface", ifi.Name, "types", b.Types)
			ifs[ifi.Index] = &ifState{ifi: ifi, wait: time.Second}
		}
		for idx, s := range ifs {
			if !seen[idx] {
				log.Debug("mdns interface gone", "iface", s.ifi.Name)
				c.leave(&s.ifi)
				delete(ifs, idx)
				cache.forget(idx)
			}
		}
	}
	sendDue := func(now time.Time) {
		for _, s := range ifs {
			if now.Before(s.next) {
				continue
			}
			if err := c.send(&s.ifi, query); err != nil {
				rl.Log(slog.LevelDebug, "send "+s.ifi.Name, "mdns: query failed", "iface", s.ifi.Name, "err", err)
			}
			s.next = now.Add(s.wait)
			s.wait = min(s.wait*2, maxWait)
		}
	}
	scan()
	sendDue(time.Now())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastScan := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-pkts:
			if ifs[p.iface] == nil {
				continue
			}
			m, err := Parse(p.data)
			if err != nil {
				rl.Log(slog.LevelDebug, "parse", "mdns: bad packet ignored", "iface", names(p.iface), "from", p.src.Addr(), "err", err)
				continue
			}
			if !m.Response || m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
				continue
			}
			src := p.src.Addr().Unmap()
			if !src.IsValid() {
				src = netip.Addr{}
			}
			if cache.add(m, p.iface, src, b.Types, time.Now()) {
				rl.Log(slog.LevelWarn, "full", "mdns: cache full, records dropped", "max_services", MaxServices, "from", src)
			}
			if !publish() {
				return nil
			}
		case <-b.Rescan:
			lastScan = time.Now()
			scan()
			sendDue(lastScan)
		case now := <-tick.C:
			if now.Sub(lastScan) >= rescan {
				lastScan = now
				scan()
			}
			sendDue(now)
			cache.expire(now)
			if !publish() {
				return nil
			}
		}
	}
}
