package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/discovery"
	"github.com/iosmux/iosmux/internal/peertest"
)

// advertiseIn runs a responder for adverts in l's namespace until the returned stop.
func advertiseIn(t *testing.T, l *peertest.Link, adverts ...discovery.Advert) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var r *discovery.Responder
	if err := peertest.InNetNS(l.NS, func() (err error) {
		r, err = discovery.NewResponder(ctx, l.PeerIf, "phone", adverts, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestManualPairingListedAsPairable: a _remotepairing-manual-pairing._tcp advert is listed in
// the status route's pairable devices (name and identifier from its TXT, its address on the
// browsing interface), is no device of the manager, and leaves the list with its goodbye.
func TestManualPairingListedAsPairable(t *testing.T) {
	l := peertest.NetNSLink(t)
	w := &WiFiSource{Interfaces: discovery.Named([]string{l.HostIf})}
	m := New(Config{Sources: []Source{w}, Pairable: w.Pairable,
		Open: func(context.Context, Device, func(string)) (Tunnel, Info, error) {
			t.Error("opened a device")
			return nil, Info{}, nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	stop := advertiseIn(t, l, discovery.Advert{Type: discovery.TypeManualPairing, Instance: "Living Room", Port: 49153,
		TXT: []string{"name=Living Room TV", "identifier=ABCD-1234", "model=AppleTV14,1"}})
	var got []api.PairableStatus
	waitUntil(t, "the pairable device", func() bool { got = m.Status().Pairable; return len(got) == 1 })
	want := api.PairableStatus{Name: "Living Room TV", Identifier: "ABCD-1234", Model: "AppleTV14,1",
		Address: "[fe80::2%" + l.HostIf + "]:49153", Interface: l.HostIf}
	if got[0] != want {
		t.Fatalf("pairable %+v, want %+v", got[0], want)
	}
	if n := len(m.Status().Devices); n != 0 {
		t.Fatalf("a pairable advert made %d devices", n)
	}
	stop()
	waitUntil(t, "the pairable device to leave", func() bool { return len(m.Status().Pairable) == 0 })
}
