package main

import (
	"testing"
	"time"
)

// pollUntil polls cond every 5 ms (bounded by a minute) and returns when it held.
func pollUntil(b *testing.B, what string, cond func() bool) time.Time {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

func (e *env) published(udid string) bool {
	st, ok := e.device(udid)
	return ok && st.State == "published"
}

// BenchmarkDeadTunnelDetection: time from the phone going silent (the simulator's blackhole:
// the transport stays up, nothing answers) to the daemon taking the tunnel down, with the ICMPv6
// probe (the default: every 1 s, 750 ms timeout, 2 failures) and, as the baseline, the RSD
// handshake probe as it was before (every 5 s, 10 s timeout).
//
//	go test -run '^$' -bench DeadTunnelDetection -benchtime 5x ./cmd/iosmuxd/
func BenchmarkDeadTunnelDetection(b *testing.B) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"probe=ping", []string{"--liveness", "1s", "--liveness-timeout", "750ms", "--liveness-probe", "ping"}},
		{"probe=rsd-before", []string{"--liveness", "5s", "--liveness-timeout", "10s", "--liveness-probe", "rsd"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := startEnvWith(b, 1, envOptions{flags: tc.flags})
			d := e.devs[0]
			pollUntil(b, "publication", func() bool { return e.published(d.UDID) })
			var total, worst time.Duration
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				// The phone goes silent at a point of the probe cycle that varies from one
				// iteration to the next (a rebuilt tunnel starts right after a probe tick).
				time.Sleep(time.Duration(i%5) * 200 * time.Millisecond)
				b.StartTimer()
				d.SetBlackhole(true)
				t0 := time.Now()
				took := pollUntil(b, "detection", func() bool { return !e.published(d.UDID) }).Sub(t0)
				total += took
				worst = max(worst, took)
				b.StopTimer()
				d.SetBlackhole(false)
				pollUntil(b, "republication", func() bool { return e.published(d.UDID) })
				b.StartTimer()
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/detection")
			b.ReportMetric(worst.Seconds(), "s-worst")
		})
	}
}

// BenchmarkRepublish: time from a phone appearing again to its tunnel being published, after a
// replug (pair record known) and after a reset (the phone forgot the host: InvalidHostID, the
// record moved aside, pairing with Trust accepted), each as a ratio to the first publication of
// the same phone in the same run (a cold start, pairing included).
//
//	go test -run '^$' -bench Republish -benchtime 5x ./cmd/iosmuxd/
func BenchmarkRepublish(b *testing.B) {
	for _, reset := range []bool{false, true} {
		b.Run(map[bool]string{false: "after=replug", true: "after=reset"}[reset], func(b *testing.B) {
			t0 := time.Now()
			e := startEnvWith(b, 1, envOptions{})
			d := e.devs[0]
			first := pollUntil(b, "publication", func() bool { return len(e.tunnels()[d.UDID]) == 1 }).Sub(t0)
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				e.u.Unplug(d)
				pollUntil(b, "removal", func() bool { _, ok := e.device(d.UDID); return !ok })
				if reset {
					d.ForgetHosts()
				}
				b.StartTimer()
				start := time.Now()
				e.u.Plug(d)
				total += pollUntil(b, "republication", func() bool { return len(e.tunnels()[d.UDID]) == 1 }).Sub(start)
			}
			per := total / time.Duration(b.N)
			b.ReportMetric(per.Seconds()*1000, "ms/republish")
			b.ReportMetric(first.Seconds()*1000, "ms/first-publish")
			b.ReportMetric(per.Seconds()/first.Seconds(), "ratio-to-first")
		})
	}
}
