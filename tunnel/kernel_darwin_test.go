package tunnel

// These tests run only on a Mac, as root (`sudo go test -run Utun ./tunnel/`). CI runs on
// Linux: it compiles and links them for darwin (.ci/darwin.sh) but cannot run them, so they
// have not been run yet (README, "macOS: what was tried").

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func requireMacRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("utun tests need root")
	}
}

// hasAddr reports whether interface name holds addr.
func hasAddr(name string, addr netip.Addr) (bool, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return false, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == addr {
				return true, nil
			}
		}
	}
	return false, nil
}

// TestUtun runs the host side on a real utun: configured as tunnel.md §8 says, TCP both ways
// through the kernel's stack and the host route, and the utun gone after Close.
func TestUtun(t *testing.T) {
	requireMacRoot(t)
	hc, dc := tcpPair(t)
	p, err := startPair(hc, dc, Options{Backend: Kernel{}, MTUClamp: CoreDeviceProxyDropAbove}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.dev.Close()
	defer p.host.Close()
	name := p.host.Interface()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "utun") || ifi.MTU != CoreDeviceProxyDropAbove || ifi.Flags&net.FlagUp == 0 {
		t.Fatalf("interface %s: mtu %d flags %v", name, ifi.MTU, ifi.Flags)
	}
	if ok, err := hasAddr(name, p.params.ClientAddress); !ok {
		t.Fatalf("%s lacks %v (%v)", name, p.params.ClientAddress, err)
	}

	ln, err := p.devStack.Net.ListenTCPAddrPort(netip.AddrPortFrom(p.params.ServerAddress, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := p.host.DialContext(ctx, "tcp", netip.AddrPortFrom(p.params.ServerAddress, 7).String())
	if err != nil {
		t.Fatalf("dial through the utun: %v", err)
	}
	defer c.Close()
	d, ok := <-acc
	if !ok {
		t.Fatal("device accept failed")
	}
	defer d.Close()
	const n = 1 << 20
	if err := transfer(c, d, n); err != nil {
		t.Fatalf("host → device: %v", err)
	}
	if err := transfer(d, c, n); err != nil {
		t.Fatalf("device → host: %v", err)
	}

	p.host.Close()
	if _, err := net.InterfaceByName(name); err == nil {
		t.Errorf("utun %s outlived its tunnel", name)
	}
}

// TestUtunStaleAddress: a second utun for the same tunnel prefix takes the address off the
// first, as after a tunnel left behind by another process.
func TestUtunStaleAddress(t *testing.T) {
	requireMacRoot(t)
	p := RandomParams(1280, 62078)
	first, err := Kernel{}.Create(p, 1280)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := Kernel{}.Create(p, 1280)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	n1, n2 := first.(*KernelDevice).InterfaceName(), second.(*KernelDevice).InterfaceName()
	err = errors.Join(
		expectAddr(n1, p.ClientAddress, false),
		expectAddr(n2, p.ClientAddress, true))
	if err != nil {
		t.Fatal(err)
	}
}

func expectAddr(name string, addr netip.Addr, want bool) error {
	got, err := hasAddr(name, addr)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s holds %v: %v, want %v", name, addr, got, want)
	}
	return nil
}
