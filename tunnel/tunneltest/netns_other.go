//go:build !linux

package tunneltest

import (
	"errors"
	"testing"
)

// RequireRoot skips: kernel TUN tests run on Linux only.
func RequireRoot(t testing.TB) { t.Skip("kernel TUN tests run on Linux only") }

// InNetNS is Linux only.
func InNetNS(f func() error) error { return errors.New("network namespaces are Linux only") }
