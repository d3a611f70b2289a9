// Command soak plugs and unplugs a virtual iPhone into a simulated usbmuxd many times while
// an iosmuxd process serves it, each cycle waiting for the tunnel and shim to be published and
// answering RSD and then for the device to be gone, and prints the daemon's RSS, descriptors,
// goroutines and threads at the start and the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

func main() {
	cycles := flag.Int("cycles", 1000, "attach/detach cycles")
	bin := flag.String("iosmuxd", "", "iosmuxd binary (default: build ./cmd/iosmuxd)")
	backend := flag.String("backend", "userspace", "daemon backend")
	flag.Parse()
	if err := run(*cycles, *bin, *backend); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// sample is the daemon's resource use at one moment.
type sample struct {
	rssKB, fds, threads, goroutines int
}

func run(cycles int, bin, backend string) error {
	dir, err := os.MkdirTemp("", "iosmux-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "iosmuxd")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/iosmuxd").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v: %s", err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := sim.NewUsbmuxd(ctx, sim.UsbmuxdOptions{})
	defer u.Close()
	sock := filepath.Join(dir, "usbmuxd")
	if _, err := u.ListenUnix(sock); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	d := exec.CommandContext(ctx, bin, "--usbmux", "unix:"+sock, "--no-usb-network", "--no-wifi", "--api", apiAddr, "--backend", backend,
		"--state-dir", filepath.Join(dir, "state"), "--log-level", "error")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		return err
	}
	defer func() { cancel(); d.Wait() }()
	dev := sim.NewDevice(profile.Default(), "soak", nil)
	c := &http.Client{Timeout: 5 * time.Second}
	var first, warm, last sample // after cycle 1, after a tenth of the cycles, after the last
	start := time.Now()
	for i := range cycles + 1 {
		u.Plug(dev)
		entry, err := waitEntry(c, apiAddr, dev.UDID, true)
		if err != nil {
			return fmt.Errorf("cycle %d: %w", i, err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		rc, _, err := rsd.Dial(rctx, net.JoinHostPort(entry.Address, strconv.Itoa(entry.Port)), nil)
		rcancel()
		if err != nil {
			return fmt.Errorf("cycle %d: RSD through %s: %w", i, entry.Address, err)
		}
		rc.Close()
		u.Unplug(dev)
		if _, err := waitEntry(c, apiAddr, dev.UDID, false); err != nil {
			return fmt.Errorf("cycle %d: %w", i, err)
		}
		if i == 0 || i == cycles/10 || i == cycles {
			s, err := measure(c, apiAddr, d.Process.Pid)
			if err != nil {
				return err
			}
			switch i {
			case 0:
				first = s // after one full cycle: pairing done
			case cycles / 10:
				warm = s
			}
			if i == cycles {
				last = s
			}
		}
		if i > 0 && i%100 == 0 {
			fmt.Fprintf(os.Stderr, "soak: %d cycles, %v\n", i, time.Since(start).Round(time.Second))
		}
	}
	fmt.Printf("%d attach/detach cycles in %v (%v each)\n\n", cycles, time.Since(start).Round(time.Second),
		(time.Since(start) / time.Duration(cycles+1)).Round(time.Millisecond))
	fmt.Printf("| daemon | after cycle 1 | after cycle %d | after cycle %d | last/first | last/cycle %d |\n|---|---|---|---|---|---|\n",
		cycles/10+1, cycles+1, cycles/10+1)
	row := func(name string, a, w, b int, unit string) {
		fmt.Printf("| %s | %d%s | %d%s | %d%s | %.2f× | %.2f× |\n", name, a, unit, w, unit, b, unit,
			float64(b)/float64(max(a, 1)), float64(b)/float64(max(w, 1)))
	}
	row("RSS", first.rssKB, warm.rssKB, last.rssKB, " KiB")
	row("file descriptors", first.fds, warm.fds, last.fds, "")
	row("goroutines", first.goroutines, warm.goroutines, last.goroutines, "")
	row("threads", first.threads, warm.threads, last.threads, "")
	return nil
}

// waitEntry waits until udid is published (present) or gone (!present) in GET /.
func waitEntry(c *http.Client, addr, udid string, present bool) (api.TunnelEntry, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var m map[string][]api.TunnelEntry
		if resp, err := c.Get("http://" + addr + "/"); err == nil {
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			e, ok := m[udid]
			if ok == present {
				if ok {
					return e[0], nil
				}
				return api.TunnelEntry{}, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return api.TunnelEntry{}, fmt.Errorf("device %s still %s after 60 s", udid, map[bool]string{true: "absent", false: "published"}[present])
}

// measure reads the daemon's RSS, threads and descriptors from /proc, goroutines from status.
func measure(c *http.Client, addr string, pid int) (sample, error) {
	var s sample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.rssKB, _ = strconv.Atoi(f[1])
		case "Threads:":
			s.threads, _ = strconv.Atoi(f[1])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	resp, err := c.Get("http://" + addr + api.StatusPath)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	var st api.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return s, err
	}
	s.goroutines = st.Goroutines
	return s, nil
}
