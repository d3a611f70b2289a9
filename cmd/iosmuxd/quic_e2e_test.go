package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/tunnel/quictunnel"
)

// TestDaemonRemotePairingQUIC: with --protocol quic the daemon pairs with a fresh device found
// by its untrusted RSD, tunnels over QUIC (CDTunnel on the stream, packets as datagrams, the MTU
// what a datagram carries) and publishes the trusted RSD, reached through the tunnel; restarted,
// it pair-verifies with the record and tunnels over QUIC again.
func TestDaemonRemotePairingQUIC(t *testing.T) {
	d, addr := untrustedSim(t, "rp-quic")
	state := t.TempDir()
	args := []string{"--no-usbmux", "--device", addr, "--protocol", "quic", "--backend", "userspace", "--state-dir", state, "--liveness", "500ms"}
	e, stop := runDaemonWith(t, args...)
	e.waitPublished(d.UDID)
	e.trustedRSDThrough(d.UDID)
	st, _ := e.device(d.UDID)
	// Over TCP the device grants the requested 16000; over QUIC at most what one datagram holds.
	if st.Backend != "userspace" || st.MTU < 1280 || st.MTU > quictunnel.RequestMTU {
		t.Fatalf("status %+v: not a QUIC tunnel's MTU", st)
	}
	if fi, err := os.Stat(filepath.Join(state, "remote_"+d.UDID+".plist")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %v %v", fi, err)
	}
	stop()

	d.SetTrust(sim.TrustDeny) // a second Trust prompt would now fail
	e, _ = runDaemonWith(t, args...)
	e.waitPublished(d.UDID)
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatalf("after restart the tunnel reaches %s", h.UDID())
	}
	if st, _ := e.device(d.UDID); st.MTU > quictunnel.RequestMTU {
		t.Fatalf("after restart: MTU %d", st.MTU)
	}
	if hs := d.RemotePairingHosts(); len(hs) != 1 {
		t.Fatalf("device paired hosts %v", hs)
	}
}

// TestDaemonRemotePairingQUICRefused: a device that refuses QUIC (iOS 18.2 and later) stays
// unpublished with a status error that says so and names the way out, while another device is
// served.
func TestDaemonRemotePairingQUICRefused(t *testing.T) {
	refusing, addr := untrustedSim(t, "rp-noquic")
	refusing.SetTunnelOptions(sim.TunnelOptions{RefuseQUIC: true})
	other, otherAddr := untrustedSim(t, "rp-quic-other")
	e, _ := runDaemonWith(t, "--no-usbmux", "--device", addr, "--device", otherAddr, "--protocol", "quic", "--backend", "userspace", "--state-dir", t.TempDir())
	e.waitPublished(other.UDID)
	waitFor(t, "the QUIC refusal in the status route", func() bool {
		st, ok := e.device(refusing.UDID)
		return ok && strings.Contains(st.LastError, "no QUIC tunnel") && strings.Contains(st.LastError, "--protocol tcp")
	})
	if _, ok := e.tunnels()[refusing.UDID]; ok {
		t.Fatal("a device that refused QUIC was published")
	}
}

// TestDaemonRemotePairingQUICOnly: a device that refuses TCP listeners (offering only QUIC) is
// tunnelled over QUIC with the default --protocol tcp.
func TestDaemonRemotePairingQUICOnly(t *testing.T) {
	d, addr := untrustedSim(t, "rp-quic-only")
	d.SetTunnelOptions(sim.TunnelOptions{RefuseTCP: true})
	e, _ := runDaemonWith(t, "--no-usbmux", "--device", addr, "--backend", "userspace", "--state-dir", t.TempDir())
	e.waitPublished(d.UDID)
	if h := e.rsdThrough(d.UDID); h.UDID() != d.UDID {
		t.Fatalf("tunnel reaches %s", h.UDID())
	}
	if st, _ := e.device(d.UDID); st.MTU > quictunnel.RequestMTU {
		t.Fatalf("MTU %d: not a QUIC tunnel", st.MTU)
	}
}
