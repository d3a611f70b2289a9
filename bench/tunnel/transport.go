package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// unixTransport makes the host reach the device over a unix socket, as iosmuxd reaches a USB
// device through usbmuxd's, instead of loopback TCP (-transport).
var unixTransport bool

// unixPrefix marks a device address that is a unix socket's path.
const unixPrefix = "unix:"

// listenDevice opens a device listener on the bench's transport and says how to reach it.
func listenDevice() (ln net.Listener, addr string, cleanup func(), err error) {
	if !unixTransport {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, "", nil, err
		}
		return ln, ln.Addr().String(), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "iosmux-bench-dev-")
	if err != nil {
		return nil, "", nil, err
	}
	path := filepath.Join(dir, "device.sock")
	if ln, err = net.Listen("unix", path); err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return ln, unixPrefix + path, func() { os.RemoveAll(dir) }, nil
}

// dialDevice connects to an address listenDevice gave.
func dialDevice(ctx context.Context, addr string) (net.Conn, error) {
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}
	return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
}
