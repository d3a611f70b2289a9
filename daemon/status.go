package daemon

import (
	"cmp"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/iosmux/iosmux/api"
)

// What the API sees of a device run; every method takes d.mu.

// publicUDID is the UDID clients see: lockdown's UniqueDeviceID once known (usbmuxd may
// report it without its dash), else the source's.
func (d *deviceRun) publicUDID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.info.UDID != "" {
		return d.info.UDID
	}
	return d.key
}

// entry is the device's GET / entry, when published.
func (d *deviceRun) entry() (api.TunnelEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != StatePublished || d.tun == nil {
		return api.TunnelEntry{}, false
	}
	addr, port := d.endpointLocked()
	return api.TunnelEntry{Address: addr, Port: port, Interface: d.taskKeyLocked()}, true
}

// endpointLocked is the RSD address clients should use: the shim's, or the tunnel's own.
func (d *deviceRun) endpointLocked() (string, int) {
	if d.shim != nil {
		a := d.shim.RSDAddr()
		return a.IP.String(), a.Port
	}
	return d.tun.ServerAddress().String(), d.tun.RSDPort()
}

// taskKeyLocked is tunneld's "interface" value for a usbmux tunnel: named for the path that
// carries it.
func (d *deviceRun) taskKeyLocked() string {
	ct := d.carrying.ConnectionType
	if ct == "" {
		ct = "USB"
	}
	return "usbmux-" + d.key + "-" + ct
}

func (d *deviceRun) startResult() (api.StartResult, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != StatePublished || d.tun == nil {
		return api.StartResult{}, false
	}
	addr, port := d.endpointLocked()
	iface := d.tun.Interface()
	if iface == "" {
		iface = "userspace"
	}
	return api.StartResult{Interface: iface, Port: port, Address: addr}, true
}

func (d *deviceRun) status() api.DeviceStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	udid := d.key
	if d.info.UDID != "" {
		udid = d.info.UDID
	}
	s := api.DeviceStatus{UDID: udid, State: d.state, ConnectionType: d.carrying.ConnectionType,
		DeviceID: d.carrying.DeviceID, ProductID: d.carrying.ProductID,
		Source: d.carrying.Source, ProductType: d.info.ProductType, IOSVersion: d.info.ProductVersion,
		Since: d.since, UptimeSeconds: time.Since(d.since).Seconds(), Attempts: d.attempts,
		LastError: d.lastErr, LastErrorAt: d.lastErrAt, DeviceName: d.info.DeviceName, Paths: []api.PathStatus{}}
	if d.state == StateOpening && d.stage != "" {
		s.State = StateOpening + ": " + d.stage
	}
	for _, p := range d.paths {
		s.Paths = append(s.Paths, api.PathStatus{Source: p.Source, ConnectionType: p.ConnectionType,
			DeviceID: p.DeviceID, Address: cmp.Or(p.RSDAddr, p.PairingAddr), Carrying: d.state != StateCancelled && p.pathKey() == d.carrying.pathKey()})
	}
	if d.tun != nil {
		s.Backend = "kernel"
		if b, ok := d.tun.(interface{ Backend() string }); ok {
			s.Backend = b.Backend()
		} else if d.tun.Interface() == "" {
			s.Backend = "userspace"
		}
		s.Interface = d.tun.Interface()
		s.TunnelAddress = d.tun.ServerAddress().String()
		s.RSDPort = d.tun.RSDPort()
		s.MTU = d.tun.MTU()
		s.BytesToDevice, s.BytesToHost = d.tun.Bytes()
		addr, port := d.endpointLocked()
		s.RSDEndpoint = net.JoinHostPort(addr, strconv.Itoa(port))
	}
	if d.shim != nil {
		for _, f := range d.shim.Failing() {
			s.ShimFailing = append(s.ShimFailing, fmt.Sprintf("%s: %v (since %s)", f.Endpoint, f.Err, f.Since.UTC().Format(time.RFC3339)))
		}
		sort.Strings(s.ShimFailing)
	}
	return s
}
