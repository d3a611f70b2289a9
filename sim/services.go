package sim

import (
	"context"
	"net"
)

// serviceFunc serves one connection to a lockdown service the simulated lockdownd started;
// nc is already wrapped in TLS when the service asked for it.
type serviceFunc func(d *Device, ctx context.Context, nc net.Conn)

// lockdownService describes a service lockdownd's StartService can start.
type lockdownService struct {
	// SSL is the StartService reply's EnableServiceSSL.
	SSL   bool
	Serve serviceFunc
}

// lockdownServices are the services the simulated lockdownd starts, by name; files that
// implement a service register it from init.
var lockdownServices = map[string]lockdownService{}
