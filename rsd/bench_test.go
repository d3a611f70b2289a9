package rsd_test

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// benchPair connects a client and an echo server over loopback TCP.
func benchPair(b *testing.B) *rsd.Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		srv, err := rsd.Server(ctx, nc, rsd.Options{})
		if err != nil {
			return
		}
		defer srv.Close()
		for {
			in, err := srv.Receive(ctx)
			if err != nil {
				return
			}
			if in.Msg.Flags.Has(xpc.FlagWantsReply) {
				body, _ := in.Msg.Body.(*xpc.Dict)
				if n, ok := body.Uint64("reply"); ok {
					body = xpc.NewDict("blob", bytes.Repeat([]byte{7}, int(n)))
				}
				go srv.Reply(ctx, in.Msg, body)
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c, err := rsd.Client(ctx, nc, rsd.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkLargeReplySmallWindow: a 16 MiB reply through the 1 MiB windows CDS announces
// (the reply is 16 windows long), one request at a time.
func BenchmarkLargeReplySmallWindow(b *testing.B) {
	c := benchPair(b)
	const size = 16 << 20
	req := xpc.NewDict("reply", uint64(size))
	b.SetBytes(size)
	for b.Loop() {
		r, err := c.Request(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if v, _ := r.Body.(*xpc.Dict).Get("blob"); len(v.([]byte)) != size {
			b.Fatal("short reply")
		}
	}
}

// BenchmarkEchoRoundTrip: small request/reply round trips on one connection.
func BenchmarkEchoRoundTrip(b *testing.B) {
	c := benchPair(b)
	req := xpc.NewDict("CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdisplayinfo")
	for b.Loop() {
		if _, err := c.Request(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "round-trips/s")
}
