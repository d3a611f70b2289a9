package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/rsd"
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

// TestIdleAPIConnectionsLeaveShimsServing: a daemon limited to 1024 file descriptors gets
// 20 000 keep-alive connections (the number) on its API that each ask once and then sit idle; the API
// closes the idle ones past its cap, so the device's shim still accepts and answers RSD, and
// the API still answers. (Before the cap, the idle connections held every descriptor for good.)
// idleAPIConns is how many idle connections TestIdleAPIConnectionsLeaveShimsServing opens:
// about twenty times the daemon's descriptor limit.
const idleAPIConns = 20000

func TestIdleAPIConnectionsLeaveShimsServing(t *testing.T) {
	peertest.Tool(t, "prlimit")
	cmd := exec.Command("prlimit", "--nofile=1024:1024", "--", os.Args[0], "--simulate", "--backend", "userspace",
		"--api", "127.0.0.1:0", "--state-dir", filepath.Join(t.TempDir(), "state"))
	cmd.Env = append(os.Environ(), "IOSMUXD_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var apiAddr string
	sc := bufio.NewScanner(stderr)
	for apiAddr == "" && sc.Scan() {
		if _, rest, ok := strings.Cut(sc.Text(), "api=http://"); ok {
			apiAddr, _, _ = strings.Cut(rest, " ")
		}
	}
	go io.Copy(io.Discard, stderr)
	if apiAddr == "" {
		t.Fatal("daemon printed no API address")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	list := func() (map[string][]api.TunnelEntry, error) {
		resp, err := client.Get("http://" + apiAddr + "/")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var m map[string][]api.TunnelEntry
		return m, json.NewDecoder(resp.Body).Decode(&m)
	}
	var entry api.TunnelEntry
	waitFor(t, "the virtual iPhone in GET /", func() bool {
		m, err := list()
		for _, e := range m {
			entry = e[0]
		}
		return err == nil && len(m) == 1
	})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	n := clientFDs(t, idleAPIConns)
	// Each asks once with keep-alive and then sits idle, as a leaky client pool would.
	for range n {
		c, err := net.Dial("tcp", apiAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, net.JoinHostPort(entry.Address, strconv.Itoa(entry.Port)), nil)
	if err != nil {
		t.Fatalf("shim after %d idle API connections: %v", n, err)
	}
	c.Close()
	if len(h.Services) == 0 {
		t.Fatal("empty handshake")
	}
	if _, err := list(); err != nil {
		t.Fatalf("API after %d idle connections: %v", n, err)
	}
}

// clientFDs raises this test process's descriptor limit so it can hold n connections (root may
// raise the hard limit) and returns how many it may open: n, or fewer (logged) when it cannot.
func clientFDs(t *testing.T, n int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	want := uint64(n + 1024)
	if lim.Cur < want {
		raised := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
			return n
		}
		if lim.Cur < 2048 {
			t.Fatalf("descriptor limit %d is too low for this test", lim.Cur)
		}
		t.Logf("descriptor limit %d: opening %d connections instead of %d", lim.Cur, lim.Cur-1024, n)
		return int(lim.Cur - 1024)
	}
	return n
}
