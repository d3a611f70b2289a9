//go:build !linux && !darwin

package tunnel

import (
	"fmt"
	"runtime"

	"golang.zx2c4.com/wireguard/tun"
)

// KernelSupported says the Kernel backend is implemented on this system.
const KernelSupported = false

// Create implements Backend. Only Linux and macOS are implemented; use Userspace elsewhere.
func (k Kernel) Create(p *Params, mtu int) (tun.Device, error) {
	return nil, fmt.Errorf("tunnel: kernel TUN: not implemented on %s here; use the userspace backend", runtime.GOOS)
}
