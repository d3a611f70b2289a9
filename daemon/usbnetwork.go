package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/iosmux/iosmux/discovery"
)

// USBNetworkProbeRetry is the wait before an advertised RSD that did not answer is probed
// again (while its advert lasts).
const USBNetworkProbeRetry = 3 * time.Second

// maxProbes bounds the RSD handshakes the USB network source runs at once.
const maxProbes = 4

// USBNetworkSource reports phones on their USB network interface: _remoted._tcp adverts
// (spec discovery.md §3) become untrusted-RSD paths at the advertised link-local address
// (addr%zone, the SRV port), named by the UDID the RSD handshake gives; the RemotePairing
// opener pairs and tunnels over them.
type USBNetworkSource struct {
	// Interfaces lists the interfaces to browse; nil: every phone's NCM interface, brought up,
	// looked for when netlink reports a link event and every 2 s.
	Interfaces func() ([]net.Interface, error)
	Log        *slog.Logger
}

// Name is SourceUSBNetwork.
func (s *USBNetworkSource) Name() string { return SourceUSBNetwork }

// probed is a finished RSD probe of an advert.
type probed struct {
	svc  discovery.Service
	addr string
	udid string
	err  error
}

// Run browses until ctx ends.
func (s *USBNetworkSource) Run(ctx context.Context, out chan<- Event) error {
	log := discoveryLog(s.Log).With("source", SourceUSBNetwork)
	ifaces := s.Interfaces
	if ifaces == nil {
		warned := map[string]bool{}
		ifaces = discovery.USBNetworkBrowse(discovery.SysClassNet, func(name string, err error) {
			if !warned[name] {
				warned[name] = true
				log.Warn("cannot bring the phone's USB network interface up", "iface", name, "err", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var links <-chan struct{}
	if s.Interfaces == nil { // a phone's interface appears: look at once (netlink)
		var err error
		if links, err = discovery.WatchLinks(ctx); err != nil {
			log.Debug("no link events; USB network interfaces are found by rescanning", "err", err)
		}
	}
	events, errc := browse(ctx, []string{discovery.TypeRemoted}, ifaces, links, log)
	adverts := map[string]discovery.Service{} // current adverts by key
	attached := advertPaths{}
	results := make(chan probed)
	retry := make(chan discovery.Service)
	sem := make(chan struct{}, maxProbes)
	probe := func(svc discovery.Service) {
		addr := remotedAddr(svc)
		go func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			udid, err := probeRSD(ctx, addr)
			<-sem
			select {
			case results <- probed{svc: svc, addr: addr, udid: udid, err: err}:
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case ev := <-events:
			key := ev.Service.Key()
			if ev.Lost {
				delete(adverts, key)
				if !attached.detach(ctx, out, key) {
					return nil
				}
				continue
			}
			adverts[key] = ev.Service
			probe(ev.Service)
		case svc := <-retry:
			if cur, ok := adverts[svc.Key()]; ok && remotedAddr(cur) == remotedAddr(svc) {
				probe(cur)
			}
		case r := <-results:
			key := r.svc.Key()
			cur, ok := adverts[key]
			if !ok || remotedAddr(cur) != r.addr {
				continue // gone or moved since: a newer probe decides
			}
			if r.err != nil {
				log.Debug("advertised RSD did not answer; retrying", "iface", cur.Iface, "addr", r.addr, "err", r.err)
				svc := r.svc
				time.AfterFunc(USBNetworkProbeRetry, func() {
					select {
					case retry <- svc:
					case <-ctx.Done():
					}
				})
				continue
			}
			d := Device{UDID: r.udid, ConnectionType: "USB", Source: SourceUSBNetwork, RSDAddr: r.addr}
			if attached[key] == d {
				continue
			}
			log.Info("phone found on its USB network interface", "udid", r.udid, "iface", cur.Iface, "rsd", r.addr)
			if !attached.attach(ctx, out, key, d) {
				return nil
			}
		}
	}
}

// remotedAddr is where an advertised RSD is: its first IPv6 address (link-local with its
// zone), else its first address, at the SRV port.
func remotedAddr(svc discovery.Service) string {
	for _, a := range svc.Addrs {
		if a.Is6() {
			return netip.AddrPortFrom(a, svc.Port).String()
		}
	}
	ap, _ := svc.AddrPort()
	return ap.String()
}
