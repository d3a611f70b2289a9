package main

import (
	"flag"
	"log/slog"
	"net"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/daemon"
	"github.com/iosmux/iosmux/discovery"
	"github.com/iosmux/iosmux/pairrecord"
)

// discoveryOffByDefault turns both discovery sources off unless --mdns-iface is given; the
// package's tests set it, so daemons they start never browse the host's interfaces.
var discoveryOffByDefault = false

// discoveryFlags are serve's mDNS discovery flags.
type discoveryFlags struct {
	noUSBNetwork, noWiFi bool
	ifaces               []string
}

func addDiscoveryFlags(fs *flag.FlagSet) *discoveryFlags {
	f := &discoveryFlags{}
	fs.BoolVar(&f.noUSBNetwork, "no-usb-network", false, "do not look for phones on their USB network interface (_remoted._tcp over mDNS; iOS 17.0-17.3 need it)")
	fs.BoolVar(&f.noWiFi, "no-wifi", false, "do not look for paired phones on the network (_remotepairing._tcp over mDNS)")
	fs.Func("mdns-iface", "browse mDNS on the interface `NAME` for both sources (default: every phone's USB network interface, and every interface that is up for Wi-Fi); repeatable", func(v string) error {
		f.ifaces = append(f.ifaces, v)
		return nil
	})
	return f
}

// on reports whether any discovery source runs: both by default, none with --simulate (or in
// tests) unless --mdns-iface names interfaces.
func (f *discoveryFlags) on(simulate bool) (usbNet, wifi bool) {
	if (simulate || discoveryOffByDefault) && len(f.ifaces) == 0 {
		return false, false
	}
	return !f.noUSBNetwork, !f.noWiFi
}

// sources are the discovery sources the flags ask for, and the pairable list for the status
// route (nil without Wi-Fi).
func (f *discoveryFlags) sources(simulate bool, store *pairrecord.Store, log *slog.Logger) ([]daemon.Source, func() []api.PairableStatus) {
	usbNet, wifi := f.on(simulate)
	var named func() ([]net.Interface, error)
	if len(f.ifaces) > 0 {
		named = discovery.Named(f.ifaces)
	}
	var out []daemon.Source
	var pairable func() []api.PairableStatus
	if usbNet {
		out = append(out, &daemon.USBNetworkSource{Interfaces: named, Log: log})
	}
	if wifi {
		w := &daemon.WiFiSource{Interfaces: named, Store: store, Log: log}
		out = append(out, w)
		pairable = w.Pairable
	}
	if len(out) > 0 {
		log.Info("mDNS discovery on", "usb_network", usbNet, "wifi", wifi, "ifaces", f.ifaces)
		for _, name := range f.ifaces {
			if _, err := net.InterfaceByName(name); err != nil {
				log.Warn("--mdns-iface: no such interface yet; it is browsed once it appears and is up", "iface", name)
			}
		}
	}
	return out, pairable
}
