package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// startResponder runs a responder for adverts inside the link's namespace until the test ends;
// cancel stops it early (with a goodbye).
func startResponder(t testing.TB, l *peertest.Link, host string, adverts ...Advert) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var r *Responder
	if err := peertest.InNetNS(l.NS, func() (err error) {
		r, err = NewResponder(ctx, l.PeerIf, host, adverts, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// startBrowser browses types on the host end of the link.
func startBrowser(t testing.TB, l *peertest.Link, types ...string) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Event, 16)
	done := make(chan struct{})
	b := &Browser{Types: types, Interfaces: Named([]string{l.HostIf}), RescanInterval: 100 * time.Millisecond}
	if testing.Verbose() {
		b.Log = slog.Default()
	}
	go func() { defer close(done); b.Run(ctx, out) }()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

func next(t testing.TB, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no mdns event in 10 s")
	}
	return Event{}
}

// TestBrowseResponder: across a veth into another namespace, the browser finds the three
// service types of the spec (the manual-pairing name is longer than RFC 6335 allows) with
// their port, TXT and the responder's link-local address zoned to the browsing interface; a
// type it does not browse is not reported; the responder's goodbye loses them.
func TestBrowseResponder(t *testing.T) {
	l := peertest.NetNSLink(t)
	events := startBrowser(t, l, TypeRemoted, TypeRemotePairing, TypeManualPairing)
	stop := startResponder(t, l, "sim-phone",
		Advert{Type: TypeRemoted, Instance: "00008030-0012", Port: 58783},
		Advert{Type: TypeRemotePairing, Instance: "rp one", Port: 49152, TXT: []string{"identifier=ABC", "authTag=AAAAAAAA"}},
		Advert{Type: TypeManualPairing, Instance: "Apple TV", Port: 49153, TXT: []string{"name=Living Room", "identifier=XYZ"}},
		Advert{Type: "_other._tcp.local.", Instance: "x", Port: 1})
	got := map[string]Service{}
	for len(got) < 3 {
		ev := next(t, events)
		if ev.Lost {
			t.Fatalf("lost %+v", ev.Service)
		}
		got[ev.Service.Type] = ev.Service
	}
	want := map[string]struct {
		inst string
		port uint16
		txt  map[string]string
	}{
		TypeRemoted:       {"00008030-0012", 58783, nil},
		TypeRemotePairing: {"rp one", 49152, map[string]string{"identifier": "ABC", "authtag": "AAAAAAAA"}},
		TypeManualPairing: {"Apple TV", 49153, map[string]string{"name": "Living Room", "identifier": "XYZ"}},
	}
	for typ, w := range want {
		s, ok := got[typ]
		if !ok {
			t.Fatalf("%s not found; got %v", typ, got)
		}
		ap, ok := s.AddrPort()
		if s.Instance != w.inst || s.Port != w.port || !ok || ap.Addr().String() != l.PeerIP+"%"+l.HostIf || s.Iface != l.HostIf {
			t.Fatalf("%s: %+v", typ, s)
		}
		for k, v := range w.txt {
			if s.TXT[k] != v {
				t.Fatalf("%s: TXT %v, want %s=%s", typ, s.TXT, k, v)
			}
		}
		// The address is usable as found: dialing it reaches the namespace (nothing listens:
		// refused, not unreachable).
		if _, err := net.DialTimeout("tcp", ap.String(), 2*time.Second); err == nil || !isRefused(err) {
			t.Fatalf("dial %s: %v", ap, err)
		}
	}
	stop()
	lost := 0
	for lost < 3 {
		if ev := next(t, events); ev.Lost {
			lost++
		}
	}
}

// TestBrowseFloodFromOneHost: a host advertising hundreds of services of one type gets
// MaxPerSource of them reported per address it sends from, and a phone it advertises afterwards on another type is still
// found.
func TestBrowseFloodFromOneHost(t *testing.T) {
	l := peertest.NetNSLink(t)
	events := startBrowser(t, l, TypeManualPairing, TypeRemotePairing)
	const n = 300
	for i := 0; i < n; i += 10 {
		var chunk []Advert
		for j := i; j < i+10; j++ {
			chunk = append(chunk, Advert{Type: TypeManualPairing, Instance: fmt.Sprint("flood-", j), Port: 1})
		}
		startResponder(t, l, fmt.Sprint("flood", i), chunk...)
	}
	startResponder(t, l, "phone", Advert{Type: TypeRemotePairing, Instance: "phone", Port: 49152})
	manual := map[string]bool{}
	for {
		ev := next(t, events)
		if ev.Service.Type == TypeRemotePairing {
			break
		}
		if !ev.Lost {
			manual[ev.Service.Instance] = true
		}
	}
	// The host sends from up to three addresses: its two IPv6 link-local ones (fe80::2 and the
	// kernel's) and, over IPv4 without an address, 0.0.0.0.
	if bound := 3 * MaxPerSource; len(manual) > bound {
		t.Fatalf("%d of %d flooded services reported from one host, bound %d", len(manual), n, bound)
	}
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
