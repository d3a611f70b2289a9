package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets (linux/capability.h).
const capNetAdmin = 12

// tunDevice is the TUN clone device wireguard's tun opens.
const tunDevice = "/dev/net/tun"

// kernelPrivilege says what this process lacks for the kernel backend, or "" when it may
// create and address TUN interfaces: on Linux that is CAP_NET_ADMIN (not root as such) and
// read-write access to /dev/net/tun.
func kernelPrivilege() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Sprintf("cannot read this process's capabilities (%v); the kernel backend needs CAP_NET_ADMIN", err)
	}
	if lack := netAdminLack(string(b)); lack != "" {
		return lack
	}
	f, err := os.OpenFile(tunDevice, os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("the kernel backend cannot open %s: %v (udev normally makes it mode 0666; "+
			"a systemd unit with DevicePolicy= needs DeviceAllow=%s rw), or use --backend userspace", tunDevice, err, tunDevice)
	}
	f.Close()
	return ""
}

// netAdminLack reads CapEff out of /proc/self/status text.
func netAdminLack(status string) string {
	for line := range strings.SplitSeq(status, "\n") {
		v, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			break
		}
		if eff&(1<<capNetAdmin) != 0 {
			return ""
		}
		return "the kernel backend needs the CAP_NET_ADMIN capability (to create TUN interfaces and set their addresses), " +
			"and this process does not have it: run as root, or grant only that capability " +
			"(systemd: AmbientCapabilities=CAP_NET_ADMIN; or setcap cap_net_admin+ep on the binary), or use --backend userspace"
	}
	return "cannot find CapEff in /proc/self/status; the kernel backend needs CAP_NET_ADMIN"
}
