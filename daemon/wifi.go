package daemon

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/discovery"
	"github.com/iosmux/iosmux/pairrecord"
)

// WiFiRematch is how often adverts that match no record are matched again (a record may
// have been written since: the phone was just paired over USB); tunneld re-browses every 5 s.
const WiFiRematch = 2 * time.Second

// WiFiSource reports phones on the LAN: a _remotepairing._tcp advert whose TXT authTag is its
// identifier's tag under the altIRK of a stored RemotePairing record (spec discovery.md §4)
// becomes a path to that record's device at the advertised RPPairing port; an advert that
// matches no record is ignored (logged at debug). _remotepairing-manual-pairing._tcp adverts
// are listed by Pairable.
type WiFiSource struct {
	// Interfaces lists the interfaces to browse; nil: every interface that is up.
	Interfaces func() ([]net.Interface, error)
	Store      *pairrecord.Store
	Log        *slog.Logger

	mu       sync.Mutex
	pairable map[string]api.PairableStatus
	irks     map[string]irkEntry // by UDID: the record's device altIRK, cached by mtime
}

type irkEntry struct {
	mtime time.Time
	size  int64
	irk   []byte
}

// Name is SourceWiFi.
func (s *WiFiSource) Name() string { return SourceWiFi }

// Pairable lists the devices advertising manual pairing now, sorted by address.
func (s *WiFiSource) Pairable() []api.PairableStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.PairableStatus, 0, len(s.pairable))
	for _, p := range s.pairable {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b api.PairableStatus) int { return strings.Compare(a.Address, b.Address) })
	return out
}

// Run browses until ctx ends.
func (s *WiFiSource) Run(ctx context.Context, out chan<- Event) error {
	log := discoveryLog(s.Log).With("source", SourceWiFi)
	ifaces := s.Interfaces
	if ifaces == nil {
		ifaces = discovery.UpInterfaces
	}
	s.mu.Lock()
	s.pairable = map[string]api.PairableStatus{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pairable = nil
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, errc := browse(ctx, []string{discovery.TypeRemotePairing, discovery.TypeManualPairing}, ifaces, nil, log)
	unmatched := map[string]discovery.Service{}
	attached := advertPaths{}
	ignored := map[string]string{} // advert key → the tag last logged as matching nothing
	// match makes svc a path if its tag matches a record; it reports false when ctx ended.
	match := func(svc discovery.Service) bool {
		key := svc.Key()
		id, tag := svc.TXT["identifier"], svc.TXT["authtag"]
		udid := s.matchRecord(id, tag, log)
		ap, ok := svc.AddrPort()
		if udid == "" || !ok {
			unmatched[key] = svc
			if ignored[key] != tag {
				ignored[key] = tag
				log.Debug("_remotepairing._tcp advert ignored: its auth tag matches no RemotePairing record",
					"instance", svc.Instance, "iface", svc.Iface, "port", svc.Port, "identifier", id, "auth_tag", tag)
			}
			return attached.detach(ctx, out, key)
		}
		delete(unmatched, key)
		delete(ignored, key)
		d := Device{UDID: udid, ConnectionType: "Network", Source: SourceWiFi, PairingAddr: ap.String()}
		if attached[key] == d {
			return true
		}
		log.Info("phone found on the network", "udid", udid, "iface", svc.Iface, "remotepairing", d.PairingAddr)
		return attached.attach(ctx, out, key, d)
	}
	tick := time.NewTicker(WiFiRematch)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case ev := <-events:
			svc, key := ev.Service, ev.Service.Key()
			if svc.Type == discovery.TypeManualPairing {
				s.setPairable(key, svc, ev.Lost)
				continue
			}
			if ev.Lost {
				delete(unmatched, key)
				delete(ignored, key)
				if !attached.detach(ctx, out, key) {
					return nil
				}
				continue
			}
			if !match(svc) {
				return nil
			}
		case <-tick.C:
			for _, svc := range unmatched {
				if !match(svc) {
					return nil
				}
			}
		}
	}
}

// setPairable records or forgets a manual-pairing advert.
func (s *WiFiSource) setPairable(key string, svc discovery.Service, lost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lost {
		delete(s.pairable, key)
		return
	}
	ap, ok := svc.AddrPort()
	if !ok {
		return
	}
	name := svc.TXT["name"]
	if name == "" {
		name = svc.Instance
	}
	s.pairable[key] = api.PairableStatus{Name: name, Identifier: svc.TXT["identifier"], Model: svc.TXT["model"],
		Address: ap.String(), Interface: svc.Iface}
}

// matchRecord is the UDID of the stored RemotePairing record whose device altIRK makes tag
// identifier's auth tag, or "".
func (s *WiFiSource) matchRecord(identifier, tag string, log *slog.Logger) string {
	if identifier == "" || tag == "" || s.Store == nil {
		return ""
	}
	udids, err := s.Store.ListRemote()
	if err != nil {
		log.Debug("cannot list RemotePairing records", "err", err)
		return ""
	}
	for _, udid := range udids {
		if discovery.MatchAuthTag(s.irk(udid), identifier, tag) {
			return udid
		}
	}
	return ""
}

// irk is the device altIRK of udid's record, read again only when the file changed (its
// modification time or size).
func (s *WiFiSource) irk(udid string) []byte {
	fi, err := os.Stat(filepath.Join(s.Store.Dir(), "remote_"+udid+".plist"))
	if err != nil {
		return nil
	}
	s.mu.Lock()
	e, ok := s.irks[udid]
	s.mu.Unlock()
	if ok && e.mtime.Equal(fi.ModTime()) && e.size == fi.Size() {
		return e.irk
	}
	rec, err := s.Store.LoadRemote(udid)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.irks == nil {
		s.irks = map[string]irkEntry{}
	}
	if len(s.irks) >= pairrecord.MaxRemoteRecords {
		clear(s.irks)
	}
	s.irks[udid] = irkEntry{mtime: fi.ModTime(), size: fi.Size(), irk: rec.DeviceAltIRK}
	return rec.DeviceAltIRK
}
