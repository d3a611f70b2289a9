package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// heapWatch samples the process's heap until stopped and returns the peak.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

// TestPlistBombPairRecords: a ~300-byte binary plist that would decode to ~1.5 GB, served as
// a device's pair record by usbmuxd's ReadPairRecord and given to import-pair-record, is
// refused without the heap growing, and another device keeps being served.
func TestPlistBombPairRecords(t *testing.T) {
	bomb := peertest.PlistBomb(6, 14, 200) // 14^6 copies of 200 bytes
	victim := sim.NewDevice(profile.Default(), "bomb", nil)
	stop := heapWatch()
	e := startEnvHook(t, 1, false, sim.UsbmuxdOptions{}, func(e *env) {
		e.u.SetPairRecord(victim.UDID, bomb)
		e.u.Plug(victim)
	})
	// The bomb is refused, so the daemon pairs afresh (Trust accepted) and publishes both.
	e.waitPublished(e.devs[0].UDID, victim.UDID)
	e.rsdThrough(e.devs[0].UDID)
	if peak := stop(); peak > 512<<20 {
		t.Fatalf("heap reached %d MiB while a device served a plist bomb as its pair record", peak>>20)
	}

	file := filepath.Join(t.TempDir(), victim.UDID+".plist")
	if err := os.WriteFile(file, bomb, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	stop = heapWatch()
	code := run([]string{"import-pair-record", "--state-dir", filepath.Join(t.TempDir(), "s"), file}, &out, &errb)
	if peak := stop(); peak > 512<<20 {
		t.Fatalf("heap reached %d MiB importing a plist bomb", peak>>20)
	}
	if code == 0 || !strings.Contains(errb.String(), "limits") {
		t.Fatalf("import-pair-record of a plist bomb: exit %d: %s", code, errb.String())
	}
}
