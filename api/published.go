package api

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/iosmux/iosmux/lockdown"
)

// statePublished is daemon.StatePublished: a device whose tunnel clients may use.
const statePublished = "published"

// published is one usable tunnel as the go-ios and appium projections need it.
type published struct {
	DeviceStatus
	Host string // RSD address clients dial: the shim's or the tunnel's own
	Port int    // its RSD port
}

// publishedTunnels lists the daemon's published devices, sorted by UDID.
func publishedTunnels(d Daemon) []published {
	var out []published
	for _, s := range d.Status().Devices {
		if s.State != statePublished || s.RSDEndpoint == "" {
			continue
		}
		host, port, err := net.SplitHostPort(s.RSDEndpoint)
		if err != nil {
			continue
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			continue
		}
		out = append(out, published{DeviceStatus: s, Host: host, Port: p})
	}
	slices.SortFunc(out, func(a, b published) int { return strings.Compare(a.UDID, b.UDID) })
	return out
}

// findPublished is udid's published tunnel; a UDID matches with or without its dash.
func findPublished(d Daemon, udid string) (published, bool) {
	for _, p := range publishedTunnels(d) {
		if lockdown.SameUDID(p.UDID, udid) {
			return p, true
		}
	}
	return published{}, false
}

// knownDevice reports whether any source knows udid, published or not.
func knownDevice(d Daemon, udid string) bool {
	for _, s := range d.Status().Devices {
		if lockdown.SameUDID(s.UDID, udid) {
			return true
		}
	}
	return false
}
