//go:build !unix

package discovery

import "syscall"

// reusePort is a no-op where SO_REUSEPORT does not exist.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
