package tunnel

import (
	"context"
	"sync/atomic"
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

// TestDropAll: while Options.DropAll is true the device side takes nothing from the transport
// (the echo goes unanswered); once false, packets get through again.
func TestDropAll(t *testing.T) {
	var all atomic.Bool
	p := newPair(t, Options{}, Options{DropAll: &all})
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := p.host.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	all.Store(true)
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := p.host.Ping(short); err == nil {
		t.Fatal("an echo got through DropAll")
	}
	if p.dev.Stats().Received.Dropped == 0 {
		t.Fatal("DropAll did not count its drops")
	}
	all.Store(false)
	if err := p.host.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
