package main

import (
	"slices"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// BenchmarkDiscoveredToPublished: daemon start to a published tunnel for a simulated phone in
// another network namespace, found by its _remoted._tcp advert, against the same phone given
// by hand (--device, its link-local untrusted RSD) in the same run: the same pair-verify and
// tunnel, so the difference is discovery. Reports both medians and their ratio.
//
//	go test -run '^$' -bench DiscoveredToPublished -benchtime 20x ./cmd/iosmuxd/
func BenchmarkDiscoveredToPublished(b *testing.B) {
	l := peertest.NetNSLink(b)
	ep := startSimulateIn(b, l.NS, []string{"udid", "rsd", "mdns"}, "--rsd", "[::]:0", "--untrusted", "--mdns", l.PeerIf)
	udid, rsdAddr := ep["udid"], "[fe80::2%"+l.HostIf+"]:"+portOfAddr(b, ep["rsd"])
	state := b.TempDir()
	common := []string{"--no-usbmux", "--no-wifi", "--backend", "userspace", "--state-dir", state}
	e, stop, _ := runDaemonLogged(b, append(common, "--mdns-iface", l.HostIf)...) // pairs (Trust accepted)
	e.waitPublished(udid)
	stop()
	timed := func(args ...string) time.Duration {
		start := time.Now()
		e, stop, _ := runDaemonLogged(b, append(append(common, "--no-pair"), args...)...)
		deadline := start.Add(60 * time.Second)
		for len(e.tunnels()[udid]) == 0 {
			if time.Now().After(deadline) {
				b.Fatal("not published in 60 s")
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(start)
		stop()
		return d
	}
	var found, byHand []time.Duration
	for b.Loop() {
		found = append(found, timed("--mdns-iface", l.HostIf))
		byHand = append(byHand, timed("--no-usb-network", "--device", rsdAddr))
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	f, h := med(found), med(byHand)
	b.ReportMetric(float64(f.Microseconds())/1000, "found-ms")
	b.ReportMetric(float64(h.Microseconds())/1000, "by-hand-ms")
	b.ReportMetric(float64(f)/float64(h), "found/by-hand")
}
