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
	liveness := flag.Bool("liveness-compare", false, "instead: idle CPU of the daemon and the simulated phones with the old liveness probe (an RSD handshake every 5 s) and the new one (an ICMPv6 echo every 1 s), both with -devices devices")
	flag.Parse()
	if *liveness {
		if err := compareLiveness(*n, *bin, *idle, *backend); err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
		return
	}
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
	simCPU       float64 // the simulator's (the phones') share of one core over the same time
}

// build builds iosmuxd into dir unless bin names one.
func build(bin, dir string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(dir, "iosmuxd")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/iosmuxd").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, out)
	}
	return bin, nil
}

// compareLiveness measures idle CPU with the old and the new liveness probe, same devices.
func compareLiveness(n int, bin string, idle time.Duration, backend string) error {
	dir, err := os.MkdirTemp("", "iosmux-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin, err = build(bin, dir); err != nil {
		return err
	}
	before, err := measure(bin, dir, n, idle, backend, "--liveness-probe", "rsd", "--liveness", "5s", "--liveness-timeout", "10s")
	if err != nil {
		return fmt.Errorf("rsd probe: %w", err)
	}
	after, err := measure(bin, dir, n, idle, backend, "--liveness-probe", "ping", "--liveness", "1s", "--liveness-timeout", "750ms")
	if err != nil {
		return fmt.Errorf("ping probe: %w", err)
	}
	floor, err := measure(bin, dir, n, idle, backend, "--liveness", "24h")
	if err != nil {
		return fmt.Errorf("no probe: %w", err)
	}
	fmt.Printf("| liveness probe (%d devices, %v idle) | daemon CPU | simulated phones' CPU |\n|---|---|---|\n", n, idle)
	fmt.Printf("| before: RSD handshake every 5 s | %.2f%% | %.2f%% |\n", 100*before.idleCPU, 100*before.simCPU)
	fmt.Printf("| after: ICMPv6 echo every 1 s | %.2f%% | %.2f%% |\n", 100*after.idleCPU, 100*after.simCPU)
	fmt.Printf("| floor: no probe in the window | %.2f%% | %.2f%% |\n", 100*floor.idleCPU, 100*floor.simCPU)
	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	fmt.Printf("\nratios after/before: daemon CPU %s, phones' CPU %s; the probes alone (minus the floor): daemon %s, phones %s\n",
		ratio(after.idleCPU, before.idleCPU), ratio(after.simCPU, before.simCPU),
		ratio(after.idleCPU-floor.idleCPU, before.idleCPU-floor.idleCPU), ratio(after.simCPU-floor.simCPU, before.simCPU-floor.simCPU))
	return nil
}

func run(n int, bin string, idle time.Duration, backend string) error {
	dir, err := os.MkdirTemp("", "iosmux-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin, err = build(bin, dir); err != nil {
		return err
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
func measure(bin, dir string, n int, idle time.Duration, backend string, daemonFlags ...string) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tag := fmt.Sprintf("%d-%d", n, time.Now().UnixNano())
	sock := filepath.Join(dir, "usbmuxd-"+tag)
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
	d := exec.CommandContext(ctx, bin, append([]string{"--usbmux", "unix:" + sock, "--no-usb-network", "--no-wifi", "--api", apiAddr, "--backend", backend,
		"--state-dir", filepath.Join(dir, "state-"+tag), "--log-level", "error"}, daemonFlags...)...)
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
	cpu0, sim0 := cpuTicks(d.Process.Pid), cpuTicks(simCmd.Process.Pid)
	t0 := time.Now()
	time.Sleep(idle)
	r.idleCPU = float64(cpuTicks(d.Process.Pid)-cpu0) / 100 / time.Since(t0).Seconds()
	r.simCPU = float64(cpuTicks(simCmd.Process.Pid)-sim0) / 100 / time.Since(t0).Seconds()
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
