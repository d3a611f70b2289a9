package tunnel

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// startKernelPair is newPair with the host on a kernel TUN; it must run inside InNetNS.
func startKernelPair(hc, dc net.Conn, hostOpts, devOpts Options) (*pair, error) {
	hostOpts.Backend = Kernel{}
	return startPair(hc, dc, hostOpts, devOpts)
}

// hostRoute reports whether this thread's namespace routes dst/128 to iface.
func hostRoute(dst netip.Addr, iface string) (bool, error) {
	f, err := os.Open("/proc/thread-self/net/ipv6_route")
	if err != nil {
		return false, err
	}
	defer f.Close()
	a := dst.As16()
	want := hex.EncodeToString(a[:]) + " 80 "
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if strings.HasPrefix(sc.Text(), want) && fs[len(fs)-1] == iface {
			return true, nil
		}
	}
	return false, sc.Err()
}

// TestKernelTUN runs the host side on a real TUN in a throwaway network namespace: the
// interface is configured as tunnel.md §8 says, TCP runs both ways through the kernel's stack,
// and closing the tunnel removes the interface.
func TestKernelTUN(t *testing.T) {
	tunneltest.RequireRoot(t)
	hc, dc := tcpPair(t) // in the test's namespace; the TUN goes into a new one
	err := tunneltest.InNetNS(func() error {
		p, err := startKernelPair(hc, dc, Options{MTUClamp: CoreDeviceProxyDropAbove}, Options{})
		if err != nil {
			return err
		}
		defer p.dev.Close()
		defer p.host.Close()
		name := p.host.Interface()
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		if ifi.MTU != 8192 || ifi.Flags&net.FlagUp == 0 || !strings.HasPrefix(name, "iosmux") {
			return fmt.Errorf("interface %s: mtu %d flags %v", name, ifi.MTU, ifi.Flags)
		}
		addrs, _ := ifi.Addrs()
		found := false
		for _, a := range addrs {
			found = found || a.String() == p.params.Prefix().String()
		}
		if !found {
			return fmt.Errorf("interface %s has %v, want %v", name, addrs, p.params.Prefix())
		}
		if ok, err := hostRoute(p.params.ServerAddress, name); !ok {
			return fmt.Errorf("no route %v/128 dev %s (%v)", p.params.ServerAddress, name, err)
		}

		// Dial from this (namespaced) thread; the kernel routes into the TUN.
		ln, err := p.devStack.Net.ListenTCPAddrPort(netip.AddrPortFrom(p.params.ServerAddress, 7))
		if err != nil {
			return err
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
			return fmt.Errorf("dial through the TUN: %w", err)
		}
		defer c.Close()
		d, ok := <-acc
		if !ok {
			return errors.New("device accept failed")
		}
		defer d.Close()
		const n = 4 << 20
		if err := transfer(c, d, n); err != nil {
			return fmt.Errorf("host → device: %w", err)
		}
		if err := transfer(d, c, n); err != nil {
			return fmt.Errorf("device → host: %w", err)
		}
		// Counters are final once the pumps have stopped: the last packets can reach the
		// kernel before their batch is counted.
		p.host.Close()
		if st := p.host.Stats(); st.Sent.Bytes < n || st.Received.Bytes < n {
			return fmt.Errorf("host counters %+v", st)
		}
		if d := p.dev.Stats().Received.Dropped; d != 0 {
			return fmt.Errorf("device dropped %d packets", d)
		}
		if _, err := net.InterfaceByName(name); err == nil {
			return fmt.Errorf("interface %s outlived its tunnel", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// benchKernelBulk is BenchmarkBulk's kernel TUN case: the host's kernel stack and a TUN in a
// throwaway namespace, the device a gVisor stack.
func benchKernelBulk(b *testing.B) {
	for _, up := range []bool{true, false} {
		dir := map[bool]string{true: "up", false: "down"}[up]
		b.Run("kernel/tcp/"+dir, func(b *testing.B) {
			tunneltest.RequireRoot(b)
			hc, dc := tcpPair(b)
			var p *pair
			var h, d net.Conn
			err := tunneltest.InNetNS(func() error {
				var err error
				if p, err = startKernelPair(hc, dc, Options{}, Options{}); err != nil {
					return err
				}
				h, d, err = dialThrough(p, p.host.DialContext)
				return err
			})
			if p != nil {
				defer p.dev.Close()
				defer p.host.Close()
			}
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			defer d.Close()
			benchBulk(b, h, d, up)
		})
	}
}
