// Command tunnel measures the tunnel data path in one invocation and prints one table of
// ratios: the ceilings (one core of `openssl speed` for the negotiated TLS suite, a loopback
// TCP copy), iosmux's host side with the kernel and userspace backends at several MTUs in
// both directions with the host process's CPU seconds per GB, appium-ios-tuntap's forwarder
// on the same simulated device, iosmux with a kernel TUN as the device side too (in a
// network namespace), and the shim's relay against a direct connection.
//
// The host side runs as a child process (this binary with -role=host; appium's forwarder is
// a node process), so its CPU time is its own; -pin gives it a CPU of its own too. Needs root for kernel TUNs; rows that cannot
// run say why. Run from the repository root: go run ./bench/tunnel
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

func main() {
	role := flag.String("role", "bench", "bench, or host (internal: the measured host process)")
	connect := flag.String("connect", "", "host role: device address")
	backend := flag.String("backend", "kernel", "host role: kernel or userspace")
	cert := flag.String("cert", "", "host role: client certificate PEM")
	key := flag.String("key", "", "host role: client key PEM")
	mtu := flag.Int("mtu", 8192, "host role: MTU to request")
	dur := flag.Duration("d", 1500*time.Millisecond, "how long each transfer sends")
	mtus := flag.String("mtus", "1280,8192,16000", "MTUs to measure")
	only := flag.String("only", "", "comma-separated subset of: ceiling,iosmux,appium,netns,shim")
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile (the device side) here")
	interop := flag.String("interop", "test/interop", "directory with node_modules/appium-ios-tuntap")
	runs := flag.Int("runs", 1, "measure everything this many times, interleaved, and show each row's median (the shim's rows\n"+
		"are already medians of three alternations)")
	coalesce := flag.Bool("coalesce", false, "iosmux's host sends a batch of packets in full TLS records and one write, as iosmuxd --coalesce does\n"+
		"(default: one record and one write per packet, as iosmuxd runs CoreDeviceProxy)")
	pin := flag.Bool("pin", false, "run each forwarder (iosmux's host child, appium's node) on CPU 0 and everything else on CPU 1,\n"+
		"so the forwarder does not share its core with the device side and the transfer ends (Linux, 2+ CPUs)")
	transport := flag.String("transport", "tcp", "how the host reaches the device: tcp (loopback TCP) or unix (a unix socket, as iosmuxd\n"+
		"reaches a USB device through usbmuxd's)")
	flag.Parse()
	if *role == "host" {
		if err := runHost(*connect, *backend, *cert, *key, *mtu, *coalesce); err != nil {
			fmt.Fprintln(os.Stderr, "host:", err)
			os.Exit(1)
		}
		return
	}
	var ms []int
	for _, s := range strings.Split(*mtus, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad -mtus:", err)
			os.Exit(2)
		}
		ms = append(ms, n)
	}
	switch *transport {
	case "tcp":
	case "unix":
		unixTransport = true
	default:
		fmt.Fprintln(os.Stderr, "bad -transport: want tcp or unix")
		os.Exit(2)
	}
	if *pin {
		if numCPU() < 2 {
			fmt.Fprintln(os.Stderr, "-pin needs 2 CPUs")
			os.Exit(2)
		}
		if err := pinSelf(1); err != nil {
			fmt.Fprintln(os.Stderr, "-pin:", err)
			os.Exit(1)
		}
		hostCPU = 0
	}
	b := &bench{dur: *dur, mtus: ms, interop: *interop, coalesce: *coalesce, runs: *runs, only: map[string]bool{}}
	for _, s := range strings.Split(*only, ",") {
		if s != "" {
			b.only[s] = true
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := b.run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/tunnel:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
