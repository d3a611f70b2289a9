// Package api is iosmuxd's HTTP API: pymobiledevice3 tunneld's routes and iosmux's own status.
package api

import (
	"context"
	"errors"
	"time"
)

// DefaultAddr is tunneld's listen address (tunneld-api.md §1).
const DefaultAddr = "127.0.0.1:49151"

// TunnelEntry is one tunnel as GET / lists it; the field order is tunneld's.
type TunnelEntry struct {
	Address   string `json:"tunnel-address"`
	Port      int    `json:"tunnel-port"`
	Interface string `json:"interface"`
}

// StartResult is /start-tunnel's success body.
type StartResult struct {
	Interface string `json:"interface"`
	Port      int    `json:"port"`
	Address   string `json:"address"`
}

// DeviceStatus is one device in iosmux's status route.
type DeviceStatus struct {
	UDID           string    `json:"udid"`
	State          string    `json:"state"`
	ConnectionType string    `json:"connectionType,omitempty"`
	DeviceID       int       `json:"deviceId,omitempty"`  // usbmuxd's id; 0 for hand-given devices
	ProductID      int       `json:"productId,omitempty"` // usbmuxd's USB product id
	Source         string    `json:"source,omitempty"`
	ProductType    string    `json:"productType,omitempty"`
	IOSVersion     string    `json:"iosVersion,omitempty"`
	Backend        string    `json:"backend,omitempty"`
	Interface      string    `json:"interface,omitempty"`
	TunnelAddress  string    `json:"tunnelAddress,omitempty"`
	RSDPort        int       `json:"rsdPort,omitempty"`
	RSDEndpoint    string    `json:"rsdEndpoint,omitempty"`
	MTU            int       `json:"mtu,omitempty"`
	Since          time.Time `json:"since"`
	UptimeSeconds  float64   `json:"uptimeSeconds"`
	BytesToDevice  uint64    `json:"bytesToDevice"`
	BytesToHost    uint64    `json:"bytesFromDevice"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"lastError,omitempty"`
	LastErrorAt    time.Time `json:"lastErrorAt,omitzero"`
	// ShimFailing lists the device's shim endpoints whose accepts fail now (EMFILE, …); they
	// keep retrying and serve again when the cause is gone.
	ShimFailing []string `json:"shimFailing,omitempty"`
	// DeviceName is lockdown's DeviceName.
	DeviceName string `json:"deviceName,omitempty"`
	// Paths are every way the device is reachable now; Carrying marks the tunnel's.
	Paths []PathStatus `json:"paths"`
}

// PathStatus is one path to a device: a usbmuxd entry (USB or Network) or a hand-given address.
type PathStatus struct {
	Source         string `json:"source"`
	ConnectionType string `json:"connectionType,omitempty"`
	DeviceID       int    `json:"deviceId,omitempty"`
	Address        string `json:"address,omitempty"`
	Carrying       bool   `json:"carrying"`
}

// Status is iosmux's status route body.
type Status struct {
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"startedAt"`
	UptimeSeconds float64   `json:"uptimeSeconds"`
	// Goroutines is the daemon's goroutine count (a leak shows here first).
	Goroutines int            `json:"goroutines"`
	Devices    []DeviceStatus `json:"devices"`
	Sources    []SourceStatus `json:"sources"`
	// Pairable lists devices advertising _remotepairing-manual-pairing._tcp: not devices of
	// the manager yet, pairable on request ('iosmuxd pair').
	Pairable []PairableStatus `json:"pairable,omitempty"`
}

// PairableStatus is a device waiting to be paired, as its mDNS advert describes it.
type PairableStatus struct {
	Name       string `json:"name"`
	Identifier string `json:"identifier,omitempty"`
	Model      string `json:"model,omitempty"`
	Address    string `json:"address"` // IP:PORT of its RPPairing port
	Interface  string `json:"interface"`
}

// SourceStatus is one device source (a usbmuxd, a hand-given address).
type SourceStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	LastError string `json:"lastError,omitempty"`
}

// ErrNoDevice is StartTunnel's error for a device no source knows; tunneld answers 501
// "task not created" then (tunneld-api.md §2.6).
var ErrNoDevice = errors.New("no such device")

// Daemon is what the API drives.
type Daemon interface {
	// Tunnels lists published tunnels by UDID.
	Tunnels() map[string][]TunnelEntry
	// Status reports every device and source.
	Status() Status
	// StartTunnel returns the device's tunnel, starting one if needed.
	StartTunnel(ctx context.Context, udid, connectionType, ip string) (StartResult, error)
	// Cancel tears down the tunnels of udid.
	Cancel(udid string)
	// ClearTunnels tears down every tunnel.
	ClearTunnels()
	// Shutdown stops the daemon.
	Shutdown()
}
