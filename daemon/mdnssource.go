package daemon

import (
	"context"
	"log/slog"
	"net"

	"github.com/iosmux/iosmux/discovery"
)

// Source names of the discovery sources.
const (
	SourceUSBNetwork = "usb-network"
	SourceWiFi       = "wifi"
)

// browse runs an mDNS browser for types on ifaces until ctx ends; its events arrive on the
// returned channel, its end (nil or the socket error) on errc.
// A non-nil rescan makes the browser look at its interfaces at once when it signals.
func browse(ctx context.Context, types []string, ifaces func() ([]net.Interface, error), rescan <-chan struct{}, log *slog.Logger) (<-chan discovery.Event, <-chan error) {
	events := make(chan discovery.Event, 16)
	errc := make(chan error, 1)
	b := &discovery.Browser{Types: types, Interfaces: ifaces, Rescan: rescan, Log: log}
	go func() { errc <- b.Run(ctx, events) }()
	return events, errc
}

// send delivers ev to the manager unless ctx ends.
func send(ctx context.Context, out chan<- Event, ev Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// advertPaths are the paths an mDNS source has reported, by advert key.
type advertPaths map[string]Device

// detach reports key's path gone, if one was reported; false when ctx ended.
func (a advertPaths) detach(ctx context.Context, out chan<- Event, key string) bool {
	d, ok := a[key]
	if !ok {
		return true
	}
	delete(a, key)
	return send(ctx, out, Event{Device: d})
}

// attach reports d as key's path in place of the one reported before; false when ctx ended.
func (a advertPaths) attach(ctx context.Context, out chan<- Event, key string, d Device) bool {
	if !a.detach(ctx, out, key) {
		return false
	}
	a[key] = d
	return send(ctx, out, Event{Attached: true, Device: d})
}

// discoveryLog is l, or a logger that drops everything.
func discoveryLog(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
