package sim

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// BenchmarkRSDHandshake measures whole RSD sessions (dial, h2c setup, ~18 KB Handshake) per second.
func BenchmarkRSDHandshake(b *testing.B) {
	d := NewDevice(profile.Default(), "bench", nil)
	r, err := d.ServeRSD(context.Background(), TCPListen("127.0.0.1"), 0, RSDOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, h, err := rsd.Dial(ctx, r.Addr().String(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(h.Services) == 0 {
			b.Fatal("empty handshake")
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

// BenchmarkRequestReply measures CoreDevice request/reply round trips on one connection.
func BenchmarkRequestReply(b *testing.B) {
	d := NewDevice(profile.Default(), "bench", nil)
	r, err := d.ServeRSD(context.Background(), TCPListen("127.0.0.1"), 0, RSDOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	p, _ := r.Port("com.apple.coredevice.deviceinfo")
	ctx := context.Background()
	c, err := rsd.DialClient(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), rsd.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := xpc.NewDict("CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdisplayinfo",
		"CoreDevice.invocationIdentifier", "62419FC1-5ABF-4D96-BCA8-7A5F6F9A69EE")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Request(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
}
