package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// benchChunk is what one benchmark op moves.
const benchChunk = 1 << 20

// stream copies b.N chunks from w to r and returns the time it took.
func timedCopy(w, r net.Conn, total int64) (time.Duration, error) {
	buf := make([]byte, 256<<10)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		src := make([]byte, 256<<10)
		left := total
		for left > 0 {
			n := int64(len(src))
			if left < n {
				n = left
			}
			if _, err := w.Write(src[:n]); err != nil {
				errc <- err
				return
			}
			left -= n
		}
		errc <- nil
	}()
	if _, err := io.CopyBuffer(io.Discard, io.LimitReader(r, total), buf); err != nil {
		return 0, err
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// loopbackRate measures a plain loopback TCP copy in bytes/s: the yardstick of this run.
func loopbackRate(b *testing.B) float64 {
	b.Helper()
	a, c := tcpPair(b)
	defer a.Close()
	defer c.Close()
	const total = 512 << 20
	d, err := timedCopy(a, c, total)
	if err != nil {
		b.Fatal(err)
	}
	return total / d.Seconds()
}

// dialThrough opens a TCP connection host → device through p with dial.
func dialThrough(p *pair, dial func(ctx context.Context, network, address string) (net.Conn, error)) (net.Conn, net.Conn, error) {
	ln, err := p.devStack.Net.ListenTCPAddrPort(netip.AddrPortFrom(p.params.ServerAddress, 7))
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	hc, err := dial(ctx, "tcp", netip.AddrPortFrom(p.params.ServerAddress, 7).String())
	if err != nil {
		return nil, nil, err
	}
	dc := <-acc
	if dc == nil {
		hc.Close()
		return nil, nil, errors.New("device accept failed")
	}
	return hc, dc, nil
}

// benchBulk moves b.N chunks one way through a tunnel and reports the rate as a fraction of a
// loopback TCP copy measured in the same run.
func benchBulk(b *testing.B, hostConn, devConn net.Conn, up bool) {
	base := loopbackRate(b)
	w, r := hostConn, devConn
	if !up {
		w, r = devConn, hostConn
	}
	b.SetBytes(benchChunk)
	b.ResetTimer()
	d, err := timedCopy(w, r, int64(b.N)*benchChunk)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) * benchChunk / d.Seconds()
	b.ReportMetric(rate/base, "x-of-loopback")
	b.ReportMetric(base/1e6, "loopback-MB/s")
}

// pairOver is newPair on given transport ends.
func pairOver(b *testing.B, hc, dc net.Conn, hostOpts Options) *pair {
	b.Helper()
	p, err := startPair(hc, dc, hostOpts, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.host.Close(); p.dev.Close() })
	return p
}

// BenchmarkBulk: bulk TCP through a tunnel, host → device ("up") and device → host ("down"),
// userspace backend on the host (and kernel TUN when root), the device a gVisor stack as in
// package sim. Run: go test -run '^$' -bench Bulk ./tunnel/
func BenchmarkBulk(b *testing.B) {
	for _, transport := range []string{"tcp", "tls"} {
		for _, up := range []bool{true, false} {
			dir := map[bool]string{true: "up", false: "down"}[up]
			b.Run(fmt.Sprintf("userspace/%s/%s", transport, dir), func(b *testing.B) {
				hc, dc := tcpPair(b)
				if transport == "tls" {
					hc, dc = tlsOver(b, hc, dc, tls.VersionTLS12, false)
				}
				p := pairOver(b, hc, dc, Options{})
				h, d, err := dialThrough(p, p.host.DialContext)
				if err != nil {
					b.Fatal(err)
				}
				defer h.Close()
				defer d.Close()
				benchBulk(b, h, d, up)
			})
		}
	}
	benchKernelBulk(b)
}

// BenchmarkSetup: a tunnel from connected transport to a running pump on both sides (CDTunnel
// handshake, two gVisor stacks), then teardown. Run: go test -run '^$' -bench Setup ./tunnel/
func BenchmarkSetup(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		hc, dc := tcpPair(b)
		ctx, cancel := context.WithTimeout(context.Background(), failAfter)
		ch := make(chan *Tunnel, 1)
		go func() {
			dt, _, err := deviceSide(ctx, dc, 16000, Options{})
			if err != nil {
				b.Error(err)
			}
			ch <- dt
		}()
		ht, err := Start(ctx, hc, Options{})
		dt := <-ch
		cancel()
		if err != nil || dt == nil {
			b.Fatal(err)
		}
		ht.Close()
		dt.Close()
	}
}

// heapInUse is the live heap plus goroutine stacks after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkMemoryPerTunnel reports what one idle host tunnel (userspace backend) holds, with
// a device side that only answers the handshake and discards packets, and what a pair with
// the device's gVisor stack (as in package sim, without RSD) holds.
// Run: go test -run '^$' -bench MemoryPerTunnel -benchtime 1x ./tunnel/
func BenchmarkMemoryPerTunnel(b *testing.B) {
	const n = 50
	b.Run("host", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			var ts []*Tunnel
			var conns []net.Conn
			var wg sync.WaitGroup
			for range n {
				hc, dc := tcpPair(b)
				conns = append(conns, dc)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := ServerHandshake(context.Background(), dc, func(mtu int) (*Params, error) { return RandomParams(min(mtu, 16000), 1), nil }); err != nil {
						return
					}
					io.Copy(io.Discard, dc)
				}()
				ht, err := Start(context.Background(), hc, Options{})
				if err != nil {
					b.Fatal(err)
				}
				ts = append(ts, ht)
			}
			b.ReportMetric(float64(heapInUse()-before)/n, "B/tunnel")
			for _, t := range ts {
				t.Close()
			}
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		}
	})
	b.Run("pair", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			var ps []*pair
			for range n {
				hc, dc := tcpPair(b)
				ps = append(ps, pairOver(b, hc, dc, Options{}))
			}
			b.ReportMetric(float64(heapInUse()-before)/n, "B/pair")
			for _, p := range ps {
				p.host.Close()
				p.dev.Close()
			}
		}
	})
}
