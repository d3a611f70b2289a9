package daemon

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/tunnel"
)

// BenchmarkOpenRemotePairing is the daemon's time from a known device to a tunnel whose RSD
// answers, over RemotePairing (untrusted RSD handshake, tunnel service, pair-verify with the
// stored record, createListener, TLS-PSK, CDTunnel, the trusted RSD handshake through it), and in
// the same iteration over CoreDeviceProxy on the same simulated device (usbmuxd, lockdown
// session with TLS, StartService, CDTunnel, the RSD handshake): the baseline. The metric
// x-coredeviceproxy is RemotePairing's time ÷ CoreDeviceProxy's; quic-x-coredeviceproxy the same
// for RemotePairing with a QUIC tunnel (fresh RSA-2048 key per session included).
// Run: go test -run '^$' -bench OpenRemotePairing -benchtime 20x -count 3 ./daemon/
func BenchmarkOpenRemotePairing(b *testing.B) {
	d, dev := untrustedDevice(b, "rp-bench")
	dir := b.TempDir()
	r := remotePairing(b, dir, true)
	rq := remotePairing(b, dir, false) // the same store: verifies with the record r made
	rq.Protocol = ProtocolQUIC
	if tun, _, err := r.Open(context.Background(), dev, func(string) {}); err != nil { // pair once
		b.Fatal(err)
	} else {
		tun.Close()
	}
	u := sim.NewUsbmuxd(context.Background(), sim.UsbmuxdOptions{})
	defer u.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go u.Serve(ln)
	id := u.Plug(d)
	mux, err := lockdown.NewMux("tcp:" + ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cdp := &CoreDeviceProxy{Muxes: map[string]*lockdown.Mux{"usbmuxd": mux}, Store: r.Store, Pair: true, Backend: tunnel.Userspace{}}
	usb := Device{UDID: d.UDID, DeviceID: int(id), ConnectionType: "USB", Source: "usbmuxd"}
	var rp, quic, base time.Duration
	open := func(o Opener, dev Device) time.Duration {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		tun, _, err := o(ctx, dev, func(string) {})
		if err != nil {
			b.Fatal(err)
		}
		if err := checkRSD(ctx, tun); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		tun.Close()
		return took
	}
	open(cdp.Open, usb) // pairs over lockdown once
	for b.Loop() {
		rp += open(r.Open, dev)
		quic += open(rq.Open, dev)
		base += open(cdp.Open, usb)
	}
	b.ReportMetric(float64(rp.Microseconds())/float64(b.N)/1000, "ms-remotepairing/op")
	b.ReportMetric(float64(base.Microseconds())/float64(b.N)/1000, "ms-coredeviceproxy/op")
	b.ReportMetric(float64(quic.Microseconds())/float64(b.N)/1000, "ms-quic/op")
	b.ReportMetric(float64(rp)/float64(base), "x-coredeviceproxy")
	b.ReportMetric(float64(quic)/float64(base), "quic-x-coredeviceproxy")
}
