package discovery

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// SysClassNet is where the kernel lists netdevs.
const SysClassNet = "/sys/class/net"

// USBNetworkInterfaces lists the phones' USB network interfaces under root (SysClassNet):
// netdevs whose USB interface is the phone's NCM function, mapped to the phone by the USB
// device's serial (Frida's sysfs method, spec discovery.md §3.1).
func USBNetworkInterfaces(root string) ([]USBInterface, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []USBInterface
	for i, e := range ents {
		if i == 1024 { // bound the scan
			break
		}
		link := filepath.Join(root, e.Name())
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			continue
		}
		dev, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		usbIf := filepath.Dir(filepath.Dir(dev)) // …/1-1:1.5
		s, err := readSmall(filepath.Join(usbIf, "interface"))
		if err != nil || !slices.Contains(usbNetInterfaceStrings, s) {
			continue
		}
		serial, err := readSmall(filepath.Join(filepath.Dir(usbIf), "serial"))
		if err != nil || serial == "" {
			continue
		}
		out = append(out, USBInterface{Name: e.Name(), UDID: udidFromSerial(serial)})
	}
	return out, nil
}

// readSmall reads a sysfs attribute (at most 256 bytes), trimmed.
func readSmall(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, 256)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return "", err
	}
	return strings.TrimSpace(string(b[:n])), nil
}

// BringUp sets the interface up (as `ip link set NAME up`), so the kernel gives it an IPv6
// link-local address and mDNS can run on it. It needs CAP_NET_ADMIN; an interface already up
// is left alone.
func BringUp(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return err
	}
	if ifi.Flags&net.FlagUp != 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
	}
	defer unix.Close(fd)
	req, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, req); err != nil {
		return fmt.Errorf("%s: get flags: %w", name, err)
	}
	req.SetUint16(req.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, req); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%s: bring up: %w (needs CAP_NET_ADMIN; or run 'ip link set %s up')", name, err, name)
		}
		return fmt.Errorf("%s: bring up: %w", name, err)
	}
	return nil
}

// USBNetworkBrowse is the Browser.Interfaces of the USB network source: every phone's NCM
// interface under root, brought up (failures reported through bringUpErr, once per call) and
// listed once it is up.
func USBNetworkBrowse(root string, bringUpErr func(name string, err error)) func() ([]net.Interface, error) {
	return func() ([]net.Interface, error) {
		usb, err := USBNetworkInterfaces(root)
		if err != nil {
			return nil, err
		}
		var out []net.Interface
		for _, u := range usb {
			if err := BringUp(u.Name); err != nil && bringUpErr != nil {
				bringUpErr(u.Name, err)
			}
			if ifi, err := net.InterfaceByName(u.Name); err == nil && ifi.Flags&net.FlagUp != 0 {
				out = append(out, *ifi)
			}
		}
		return out, nil
	}
}
