package tunnel

import (
	"context"
	"testing"
	"time"
)

// TestPing: the device's stack answers an echo through the tunnel; once the device side is
// gone the ping fails.
func TestPing(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	for range 3 {
		if err := p.host.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.dev.Close() // the device side is gone; the host's transport is not closed yet
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	// No reply (the deadline) or, once the host side has seen the transport end, a closed
	// stack: either way the probe fails.
	if err := p.host.Ping(short); err == nil {
		t.Fatal("ping of a gone device succeeded")
	}
}

// BenchmarkPing: one liveness probe, host side (userspace backend, TCP transport).
func BenchmarkPing(b *testing.B) {
	p := newPair(b, Options{}, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.host.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
