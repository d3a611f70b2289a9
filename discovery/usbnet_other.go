//go:build !linux

package discovery

import (
	"errors"
	"net"
)

// SysClassNet is Linux's netdev list; elsewhere there is none.
const SysClassNet = ""

// USBNetworkInterfaces finds phones' USB network interfaces on Linux only.
func USBNetworkInterfaces(root string) ([]USBInterface, error) { return nil, nil }

// BringUp is Linux only.
func BringUp(name string) error { return errors.New("bringing an interface up: Linux only") }

// USBNetworkBrowse lists nothing outside Linux.
func USBNetworkBrowse(root string, bringUpErr func(name string, err error)) func() ([]net.Interface, error) {
	return func() ([]net.Interface, error) { return nil, nil }
}
