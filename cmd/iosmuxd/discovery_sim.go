package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/iosmux/iosmux/sim"
)

// simMDNS is simulate's --mdns: the first phone's adverts on one interface, started once the
// ports it advertises are known.
type simMDNS struct {
	iface string
	opts  sim.MDNSOptions
}

// start advertises d (untrusted: its RSD at rsdPort as _remoted._tcp) and prints "mdns IFACE";
// a nil m does nothing.
func (m *simMDNS) start(ctx context.Context, d *sim.Device, rsdPort int, untrusted bool, stdout io.Writer, log *slog.Logger) error {
	if m == nil {
		return nil
	}
	o := m.opts
	if untrusted && rsdPort > 0 {
		o.RemotedPort = uint16(rsdPort)
	}
	r, err := d.NewMDNS(ctx, m.iface, o, log)
	if err != nil {
		return fmt.Errorf("--mdns %s: %w", m.iface, err)
	}
	go r.Run(ctx)
	fmt.Fprintf(stdout, "mdns %s\n", m.iface)
	return nil
}

// portOf is a listener's port.
func portOf(a net.Addr) int {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.Port
	}
	return 0
}
