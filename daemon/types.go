// Package daemon is iosmuxd's device manager: sources report paths to devices; one state
// machine per device builds a tunnel over the best path, publishes it, probes it, fails over
// and rebuilds with backoff.
package daemon

import (
	"context"
	"net"
	"net/netip"
)

// Device is one path to a device, as a source reports it: the same UDID may come with several
// (usbmuxd USB, usbmuxd Network, a hand-given RSD address).
type Device struct {
	UDID           string
	DeviceID       int    // usbmuxd's id, 0 for hand-given devices
	ConnectionType string // "USB", "Network", ...
	Source         string // which source saw it
	RSDAddr        string // IP:PORT (IPv6 link-local with %zone) of an RSD endpoint: trusted, or untrusted (RemotePairing over its tunnel service); "" for usbmuxd devices
	PairingAddr    string // IP:PORT of an RPPairing network port (_remotepairing._tcp, Wi-Fi); "" if none
	ProductID      int
}

// pathKey names a path across re-plugs: its source and how it connects (usbmuxd gives a
// re-plugged device a new DeviceID, so the id is not part of it).
func (d Device) pathKey() string {
	ct := d.ConnectionType
	if ct == "" {
		ct = "USB"
	}
	return d.Source + "|" + ct
}

// Event is a path arriving or leaving.
type Event struct {
	Attached bool
	Device   Device
}

// Source reports paths until ctx ends or it fails; the manager restarts a failed source and
// shows its error in the status route.
type Source interface {
	Name() string
	Run(ctx context.Context, events chan<- Event) error
}

// Tunnel is an established tunnel to one device.
type Tunnel interface {
	// ServerAddress and RSDPort are the device's trusted RSD endpoint inside the tunnel.
	ServerAddress() netip.Addr
	RSDPort() int
	MTU() int
	// Interface names the kernel TUN, or "" for a userspace stack.
	Interface() string
	// Dial reaches the device's addresses through the tunnel.
	Dial(ctx context.Context, network, address string) (net.Conn, error)
	// Done is closed when the tunnel has ended; Err says why.
	Done() <-chan struct{}
	Err() error
	Close() error
	// Bytes is what has moved to and from the device.
	Bytes() (toDevice, fromDevice uint64)
}

// Pinger is a tunnel that can check the device is there without opening a session: an ICMPv6
// echo to the device's tunnel address, or a TCP connect for a hand-given endpoint.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Info is what opening a tunnel learned about the device.
type Info struct {
	// UDID is lockdown's UniqueDeviceID, the form clients expect.
	UDID           string
	ProductType    string
	ProductVersion string
	DeviceName     string
}

// Opener builds a tunnel to dev; stage reports progress ("lockdown", "StartSession", ...)
// so a failure names the stage it happened in. A stage starting with StagePairing is a wait
// for the user (tap Trust): the manager's build timeout does not run during it, so the opener
// bounds it itself.
type Opener func(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error)
