package sim

import (
	"context"
	"runtime"
	"testing"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
)

// startBenchTunnel serves a device tunnel on a fresh loopback pair and starts the host side
// (userspace); stop tears both down and waits for the device side.
func startBenchTunnel(b *testing.B, d *Device) (ht *tunnel.Tunnel, stop func()) {
	hc, dc := tunTCPPair(b)
	served := make(chan struct{})
	go func() {
		defer close(served)
		d.ServeTunnel(context.Background(), dc, TunnelOptions{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
	defer cancel()
	ht, err := tunnel.Start(ctx, hc, tunnel.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return ht, func() { ht.Close(); <-served }
}

// BenchmarkTunnelSetup: from a connected transport to the device's RSD handshake read through
// the tunnel — CDTunnel handshake, both gVisor stacks, the device's RSD endpoint with a
// listener per service, an h2c connection and the ~18 KB Handshake — then teardown.
// Run: go test -run '^$' -bench TunnelSetup ./sim/
func BenchmarkTunnelSetup(b *testing.B) {
	d := NewDevice(profile.Default(), "bench-tunnel", nil)
	b.ReportAllocs()
	for b.Loop() {
		ht, stop := startBenchTunnel(b, d)
		ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
		nc, err := ht.DialContext(ctx, "tcp", ht.Params().RSDAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		c, err := rsd.Client(ctx, nc, rsd.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rsd.ReadHandshake(ctx, c, nil); err != nil {
			b.Fatal(err)
		}
		c.Close()
		cancel()
		stop()
	}
}

// BenchmarkTunnelMemory reports the heap and stacks one idle simulated tunnel holds, host side
// (userspace) and device side (stack, RSD endpoint and service listeners) together.
// Run: go test -run '^$' -bench TunnelMemory -benchtime 1x ./sim/
func BenchmarkTunnelMemory(b *testing.B) {
	const n = 20
	d := NewDevice(profile.Default(), "bench-tunnel-mem", nil)
	inUse := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	for b.Loop() {
		before := inUse()
		stops := make([]func(), 0, n)
		for range n {
			_, stop := startBenchTunnel(b, d)
			stops = append(stops, stop)
		}
		b.ReportMetric(float64(inUse()-before)/n, "B/tunnel")
		for _, stop := range stops {
			stop()
		}
	}
}
