// Command fleet measures iosmuxd with many simulated devices: time until all are published,
// the daemon's memory, and its CPU use at idle, each against a one-device baseline run the
// same way in the same invocation.
package main

import (
	"bufio"
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
)

func main() {
	n := flag.Int("devices", 16, "devices in the measured run")
	bin := flag.String("iosmuxd", "", "iosmuxd binary (default: build ./cmd/iosmuxd)")
	idle := flag.Duration("idle", 30*time.Second, "how long to measure CPU at idle")
	backend := flag.String("backend", "userspace", "daemon backend")
	flag.Parse()
	if err := run(*n, *bin, *idle, *backend); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

type result struct {
	devices      int
	publish      time.Duration
	rssKB, hwmKB int
	idleCPU      float64 // fraction of one core
}

func run(n int, bin string, idle time.Duration, backend string) error {
	dir, err := os.MkdirTemp("", "iosmux-fleet-")
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
	base, err := measure(bin, dir, 1, idle, backend)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	many, err := measure(bin, dir, n, idle, backend)
	if err != nil {
		return fmt.Errorf("%d devices: %w", n, err)
	}
	fmt.Printf("| devices | time to publish all | daemon RSS | daemon peak RSS | CPU at idle (share of one core) |\n|---|---|---|---|---|\n")
	for _, r := range []result{base, many} {
		fmt.Printf("| %d | %v | %.1f MiB | %.1f MiB | %.2f%% |\n", r.devices, r.publish.Round(time.Millisecond),
			float64(r.rssKB)/1024, float64(r.hwmKB)/1024, 100*r.idleCPU)
	}
	cpuRatio := "n/a (the baseline used no measurable CPU)"
	if base.idleCPU > 0 {
		cpuRatio = fmt.Sprintf("%.2f×", many.idleCPU/base.idleCPU)
	}
	fmt.Printf("\nratios %d/1: publish time %.2f×, RSS %.2f×, idle CPU %s; memory per extra device %.0f KiB\n",
		n, many.publish.Seconds()/base.publish.Seconds(), float64(many.rssKB)/float64(base.rssKB),
		cpuRatio, float64(many.rssKB-base.rssKB)/float64(max(n-1, 1)))
	return nil
}

// measure runs a simulator with n devices and a daemon against it.
func measure(bin, dir string, n int, idle time.Duration, backend string) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(dir, fmt.Sprintf("usbmuxd-%d", n))
	simCmd := exec.CommandContext(ctx, bin, "simulate", "--usbmuxd", "unix:"+sock, "--devices", strconv.Itoa(n), "--log-level", "error")
	out, err := simCmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := simCmd.Start(); err != nil {
		return result{}, err
	}
	defer func() { cancel(); simCmd.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "usbmuxd ") {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	d := exec.CommandContext(ctx, bin, "--usbmux", "unix:"+sock, "--api", apiAddr, "--backend", backend,
		"--state-dir", filepath.Join(dir, fmt.Sprintf("state-%d", n)), "--log-level", "error")
	d.Stderr = os.Stderr
	if err := d.Start(); err != nil {
		return result{}, err
	}
	defer func() { cancel(); d.Wait() }()
	c := &http.Client{Timeout: 5 * time.Second}
	for {
		if time.Since(start) > 5*time.Minute {
			return result{}, fmt.Errorf("not all %d devices published after 5 minutes", n)
		}
		var m map[string]json.RawMessage
		if resp, err := c.Get("http://" + apiAddr + "/"); err == nil {
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
		}
		if len(m) == n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := result{devices: n, publish: time.Since(start)}
	cpu0 := cpuTicks(d.Process.Pid)
	t0 := time.Now()
	time.Sleep(idle)
	r.idleCPU = float64(cpuTicks(d.Process.Pid)-cpu0) / 100 / time.Since(t0).Seconds()
	r.rssKB, r.hwmKB = memKB(d.Process.Pid)
	return r, nil
}

// cpuTicks is utime+stime of pid in clock ticks (USER_HZ, 100 on Linux).
func cpuTicks(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return u + k
}

// memKB is VmRSS and VmHWM of pid.
func memKB(pid int) (rss, hwm int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "VmRSS:":
				rss = v
			case "VmHWM:":
				hwm = v
			}
		}
	}
	return rss, hwm
}
