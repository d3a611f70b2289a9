package daemon

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestBestPathPrefersUSB(t *testing.T) {
	usb := Device{UDID: udid, DeviceID: 1, ConnectionType: "USB", Source: "mux"}
	netw := Device{UDID: udid, DeviceID: 2, ConnectionType: "Network", Source: "mux"}
	addr := Device{UDID: udid, ConnectionType: "Network", Source: "address [fd00::1]:1", RSDAddr: "[fd00::1]:1"}
	for _, tc := range []struct {
		paths []Device
		want  Device
	}{
		{[]Device{netw, usb}, usb},
		{[]Device{addr, netw}, netw},
		{[]Device{addr, usb, netw}, usb},
		{[]Device{addr}, addr},
	} {
		if got, ok := bestPath(tc.paths); !ok || got != tc.want {
			t.Errorf("bestPath(%v) = %v, want %v", tc.paths, got, tc.want)
		}
	}
	if _, ok := bestPath(nil); ok {
		t.Error("a best path out of none")
	}
	if usb.pathKey() == netw.pathKey() || usb.pathKey() != (Device{Source: "mux", DeviceID: 9}).pathKey() {
		t.Error("path keys must tell USB from Network and ignore the usbmuxd id")
	}
}

func TestStateAfterFailure(t *testing.T) {
	if s := stateAfter(fmt.Errorf("open: %w", ErrNoPairRecord)); s != StateNeedsPairing {
		t.Fatalf("no record, no pairing: %q", s)
	}
	if s := stateAfter(errors.New("CDTunnel handshake: EOF")); s != StateBackoff {
		t.Fatalf("device error: %q", s)
	}
}

// TestBuildClockHeldDuringTrust: the build timeout does not run while the user is asked to tap
// Trust, and runs again (with what was left) after.
func TestBuildClockHeldDuringTrust(t *testing.T) {
	ctx, clock := newBuildClock(context.Background(), 50*time.Millisecond)
	defer clock.stop()
	clock.stage("lockdown connect")
	clock.stage(StagePairing + ": tap Trust on iPhone")
	time.Sleep(150 * time.Millisecond) // three timeouts' worth, all of it in the Trust wait
	if ctx.Err() != nil {
		t.Fatal("the build timed out while waiting for Trust")
	}
	clock.stage("StartSession")
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the build timeout no longer runs after the Trust wait")
	}
	if !errors.Is(context.Cause(ctx), errOpenTimeout) {
		t.Fatalf("cause %v", context.Cause(ctx))
	}
}
