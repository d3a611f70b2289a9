//go:build !linux

package main

import (
	"os"
	"runtime"
)

// kernelPrivilege says what this process lacks for the kernel backend, or "" when it may
// create TUN interfaces: outside Linux that takes root.
func kernelPrivilege() string {
	if os.Geteuid() == 0 {
		return ""
	}
	return "the kernel backend needs root on " + runtime.GOOS + " (to create utun interfaces); use --backend userspace"
}
