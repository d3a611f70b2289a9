//go:build !linux

package tunnel

import (
	"fmt"
	"runtime"

	"golang.zx2c4.com/wireguard/tun"
)

// Create implements Backend. Only Linux is implemented: wireguard's tun makes a macOS utun,
// but assigning its address and route (SIOCAIFADDR_IN6 / PF_ROUTE) is not written or tested
// here. Use Userspace on other systems.
func (k Kernel) Create(p *Params, mtu int) (tun.Device, error) {
	return nil, fmt.Errorf("tunnel: kernel TUN: not implemented on %s here; use the userspace backend", runtime.GOOS)
}
