package discovery

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// BenchmarkAdvertToFound: the time from a responder's first announcement (in another network
// namespace, across a veth) to the browser's Found event, against a UDP round trip over the
// same link in the same run. Reports the medians and their ratio.
//
//	go test -run '^$' -bench AdvertToFound -benchtime 200x ./discovery/
func BenchmarkAdvertToFound(b *testing.B) {
	l := peertest.NetNSLink(b)
	rtt := udpRTT(b, l, 200)
	events := startBrowser(b, l, TypeRemotePairing)
	var found []time.Duration
	for i := 0; b.Loop(); i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var r *Responder
		if err := peertest.InNetNS(l.NS, func() (err error) {
			r, err = NewResponder(ctx, l.PeerIf, "bench", []Advert{{Type: TypeRemotePairing, Instance: fmt.Sprint("phone-", i), Port: 49152,
				TXT: []string{"identifier=x", "authTag=AAAAAAAA"}}}, nil)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); r.Run(ctx) }()
		for {
			ev := next(b, events)
			if !ev.Lost && ev.Service.Instance == fmt.Sprint("phone-", i) {
				found = append(found, time.Since(start))
				break
			}
		}
		cancel()
		<-done
		// Its goodbye, so the next round starts from an empty cache; a lost one (multicast is
		// best effort) leaves the entry to its TTL, which the per-sender bound has room for.
	wait:
		for {
			select {
			case ev := <-events:
				if ev.Lost {
					break wait
				}
			case <-time.After(3 * time.Second):
				b.Logf("round %d: no goodbye seen", i)
				break wait
			}
		}
	}
	f := median(found)
	b.ReportMetric(float64(f.Microseconds()), "found-µs")
	b.ReportMetric(float64(rtt.Microseconds()), "udp-rtt-µs")
	b.ReportMetric(float64(f)/float64(rtt), "found/rtt")
}

// udpRTT is the median of n UDP echo round trips from this namespace to l's.
func udpRTT(b *testing.B, l *peertest.Link, n int) time.Duration {
	var srv net.PacketConn
	if err := peertest.InNetNS(l.NS, func() (err error) {
		srv, err = net.ListenPacket("udp6", "[::]:0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, a, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], a)
		}
	}()
	c, err := net.Dial("udp6", fmt.Sprintf("[%s%%%s]:%d", l.PeerIP, l.HostIf, srv.LocalAddr().(*net.UDPAddr).Port))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var rtts []time.Duration
	buf := make([]byte, 64)
	for range n {
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	return median(rtts)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkIdleCPU: this process's CPU time per second of wall time, idle, with and without a
// browser of the three service types on a veth (nothing advertised: the daemon's steady state
// on a LAN without phones). Reports CPU-µs per second for both.
//
//	go test -run '^$' -bench IdleCPU -benchtime 1x ./discovery/
func BenchmarkIdleCPU(b *testing.B) {
	l := peertest.NetNSLink(b)
	const window = 10 * time.Second
	measure := func() float64 {
		c0, t0 := peertest.ProcessCPU(b), time.Now()
		time.Sleep(window)
		return float64((peertest.ProcessCPU(b) - c0).Microseconds()) / time.Since(t0).Seconds()
	}
	for b.Loop() {
		off := measure()
		ctx, cancel := context.WithCancel(context.Background())
		out := make(chan Event, 16)
		done := make(chan struct{})
		br := &Browser{Types: []string{TypeRemoted, TypeRemotePairing, TypeManualPairing}, Interfaces: Named([]string{l.HostIf})}
		go func() { defer close(done); br.Run(ctx, out) }()
		time.Sleep(time.Second) // past the first queries
		on := measure()
		cancel()
		<-done
		b.ReportMetric(off, "cpu-µs/s-off")
		b.ReportMetric(on, "cpu-µs/s-browsing")
	}
}
