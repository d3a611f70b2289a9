// Package daemon is iosmuxd's device manager: one state machine per device, from discovery to
// a published tunnel, with liveness checks, rebuilds and backoff.
package daemon

import (
	"context"
	"net"
	"net/netip"
)

// Device is one device as a source reports it.
type Device struct {
	UDID           string
	DeviceID       int    // usbmuxd's id, 0 for hand-given devices
	ConnectionType string // "USB", "Network", ...
	Source         string // which source saw it
	RSDAddr        string // IP:PORT of an RSD endpoint given by hand; "" for usbmuxd devices
	ProductID      int
}

// Event is a device arriving or leaving.
type Event struct {
	Attached bool
	Device   Device
}

// Source reports devices until ctx ends or it fails; the manager restarts a failed source.
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

// Info is what opening a tunnel learned about the device.
type Info struct {
	// UDID is lockdown's UniqueDeviceID, the form clients expect.
	UDID           string
	ProductType    string
	ProductVersion string
	// DeviceName is lockdown's DeviceName, as the device sent it.
	DeviceName string
}

// Opener builds a tunnel to dev; stage reports progress ("lockdown", "StartSession", ...)
// so a failure names the stage it happened in.
type Opener func(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error)
