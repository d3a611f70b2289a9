package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/iosmux/iosmux/shim"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// daemonMTU is the MTU iosmuxd's CoreDeviceProxy tunnels run at: it requests 16000 and clamps
// to tunnel.CoreDeviceProxyDropAbove.
const daemonMTU = 8192

type bench struct {
	dur      time.Duration
	mtus     []int
	interop  string
	coalesce bool // the iosmux host's Coalesce (iosmuxd --coalesce)
	runs     int  // rounds of every measurement; the table shows each row's median
	only     map[string]bool

	dir                   string
	devCert               tls.Certificate
	hostCertF, hostKeyF   string
	dev                   *sim.Device
	tlsVer, suite, cipher string
	openssl, loopback     float64 // bytes/s
	rows                  []row
}

// row is one measured transfer.
type row struct {
	group, path string
	mtu         int
	dir         string // "up" host→device, "down" device→host
	rate        float64
	cpuPerGB    float64 // host process CPU seconds per GB moved; NaN when not measured
	selfPerGB   float64 // this process's (device side, traffic ends) CPU seconds per GB
	err         error
}

func (b *bench) want(group string) bool { return len(b.only) == 0 || b.only[group] }

func (b *bench) run() error {
	dir, err := os.MkdirTemp("", "iosmux-bench-tunnel-")
	if err != nil {
		return err
	}
	b.dir = dir
	defer os.RemoveAll(dir)
	if b.devCert, _, _, err = throwaway(dir, "device"); err != nil {
		return err
	}
	if _, b.hostCertF, b.hostKeyF, err = throwaway(dir, "host"); err != nil {
		return err
	}
	b.dev = sim.NewDevice(profile.Default(), "bench-tunnel", nil)
	start := time.Now()

	// Per MTU, iosmux and appium run back to back, so both see the same load on a shared
	// machine; the table groups them afterwards. Rounds repeat everything, so that drift in the
	// machine's load hits every row alike.
	var openssl, loopback []float64
	for round := range max(b.runs, 1) {
		if b.runs > 1 {
			fmt.Fprintf(os.Stderr, "bench/tunnel: round %d of %d\n", round+1, b.runs)
		}
		b.round()
		if b.want("ceiling") || b.want("iosmux") {
			b.ceiling()
			openssl, loopback = append(openssl, b.openssl), append(loopback, b.loopback)
		}
	}
	b.openssl, b.loopback = medianOf(openssl), medianOf(loopback)
	b.rows = medianRows(b.rows)
	if b.want("shim") {
		b.shim()
	}
	b.print(time.Since(start))
	return nil
}

// round measures every wanted path once per MTU.
func (b *bench) round() {
	root := os.Geteuid() == 0
	for _, mtu := range b.mtus {
		if b.want("iosmux") || b.want("ceiling") {
			if root {
				b.iosmux("kernel", mtu)
			} else {
				b.skip("iosmux", "kernel backend", mtu, errors.New("needs root"))
			}
		}
		if b.want("appium") {
			if root {
				b.appium(mtu)
			} else {
				b.skip("appium", "appium-ios-tuntap forwarder", mtu, errors.New("needs root"))
			}
		}
		if b.want("iosmux") || b.want("ceiling") {
			b.iosmux("userspace", mtu)
		}
		if b.want("netns") {
			if root {
				b.netns(mtu)
			} else {
				b.skip("netns", "kernel backend, kernel TUN device side", mtu, errors.New("needs root"))
			}
		}
	}
}

// medianRows keeps, for each path, MTU and direction, the row with the median rate of its
// rounds, in the order the paths were first measured.
func medianRows(rows []row) []row {
	type key struct {
		group, path, dir string
		mtu              int
	}
	byKey := map[key][]row{}
	var order []key
	for _, r := range rows {
		k := key{r.group, r.path, r.dir, r.mtu}
		if byKey[k] == nil {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], r)
	}
	out := make([]row, 0, len(order))
	for _, k := range order {
		out = append(out, median(byKey[k]))
	}
	return out
}

// medianOf is the median of vs (0 when empty).
func medianOf(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func (b *bench) skip(group, path string, mtu int, err error) {
	for _, dir := range []string{"up", "down"} {
		b.rows = append(b.rows, row{group: group, path: path, mtu: mtu, dir: dir, err: err, cpuPerGB: math.NaN()})
	}
}

// measured runs one transfer and returns its row, with the CPU time pid used (pid 0: none).
func measured(group, path string, mtu int, dir string, pid int, f func() xfer) row {
	fmt.Fprintf(os.Stderr, "bench/tunnel: %s, MTU %d, %s\n", path, mtu, dir)
	var c0, c1 float64
	if pid > 0 {
		c0, _ = cpuSeconds(pid)
	}
	s0, _ := cpuSeconds(os.Getpid())
	x := f()
	s1, _ := cpuSeconds(os.Getpid())
	r := row{group: group, path: path, mtu: mtu, dir: dir, err: x.err, rate: x.rate(), cpuPerGB: math.NaN(), selfPerGB: math.NaN()}
	if x.bytes > 0 {
		r.selfPerGB = (s1 - s0) / (float64(x.bytes) / 1e9)
	}
	if pid > 0 && x.bytes > 0 {
		c1, _ = cpuSeconds(pid)
		r.cpuPerGB = (c1 - c0) / (float64(x.bytes) / 1e9)
	}
	return r
}

// kernelDial dials from this process's stack, retrying while a fresh interface settles.
func kernelDial(addr string) func() (net.Conn, error) {
	return func() (net.Conn, error) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err == nil || time.Now().After(deadline) {
				return c, err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// transfers runs up and down through a host whose kernel stack this process reaches.
func (b *bench) kernelTransfers(group, path string, mtu, pid int, server string, e *endpoints) {
	b.rows = append(b.rows,
		measured(group, path, mtu, "up", pid, func() xfer { return up(kernelDial(hostPort(server, sinkPort)), e) }),
		measured(group, path, mtu, "down", pid, func() xfer { return down(kernelDial(hostPort(server, sourcePort)), b.dur) }))
}

// iosmux measures iosmux's host side against the simulator.
func (b *bench) iosmux(backend string, mtu int) {
	path := backend + " backend"
	d, err := simDevice(deviceTLSConfig(b.devCert), b.dev, mtu, b.dur)
	if err != nil {
		b.skip("iosmux", path, mtu, err)
		return
	}
	defer d.stop()
	h, err := startHost(d.addr, backend, b.hostCertF, b.hostKeyF, mtu, b.coalesce)
	if err != nil {
		b.skip("iosmux", path, mtu, err)
		return
	}
	defer h.stop()
	b.tlsVer, b.suite = h.tlsVer, h.suite
	e, err := d.endpoints()
	if err != nil {
		b.skip("iosmux", path, mtu, err)
		return
	}
	if backend == "kernel" {
		b.kernelTransfers("iosmux", path, mtu, h.pid(), h.server, e)
		return
	}
	secs := strconv.FormatFloat(b.dur.Seconds(), 'f', 3, 64)
	b.rows = append(b.rows,
		measured("iosmux", path, mtu, "up", h.pid(), func() xfer {
			if _, err := h.command("up "+hostPort(h.server, sinkPort)+" "+secs, b.dur); err != nil {
				return xfer{err: err}
			}
			return e.waitSink()
		}),
		measured("iosmux", path, mtu, "down", h.pid(), func() xfer {
			x, err := h.command("down "+hostPort(h.server, sourcePort)+" "+secs, b.dur)
			if err != nil {
				return xfer{err: err}
			}
			return x
		}))
}

// appium measures appium-ios-tuntap's forwarder (a node process) against the simulator.
func (b *bench) appium(mtu int) {
	const path = "appium-ios-tuntap forwarder"
	script := filepath.Join(b.interop, "tuntap-forward.mjs")
	if _, err := os.Stat(filepath.Join(b.interop, "node_modules", "appium-ios-tuntap")); err != nil {
		b.skip("appium", path, mtu, errors.New("appium-ios-tuntap not installed under "+b.interop))
		return
	}
	d, err := simDevice(deviceTLSConfig(b.devCert), b.dev, mtu, b.dur)
	if err != nil {
		b.skip("appium", path, mtu, err)
		return
	}
	defer d.stop()
	host, port, _ := net.SplitHostPort(d.addr)
	if path, ok := strings.CutPrefix(d.addr, unixPrefix); ok {
		host, port = path, "0" // the script takes a path for a host, as a unix socket
	}
	abs, _ := filepath.Abs(script)
	cmd := exec.Command("node", abs, host, port, strconv.Itoa(mtu), b.hostCertF, b.hostKeyF)
	cmd.Dir = b.interop
	cmd.Stderr = os.Stderr
	h, err := startProc(cmd)
	if err != nil {
		b.skip("appium", path, mtu, err)
		return
	}
	defer h.stop()
	line, err := h.line(60 * time.Second)
	if err != nil {
		b.skip("appium", path, mtu, fmt.Errorf("node: %w", err))
		return
	}
	var info struct{ Address string }
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		b.skip("appium", path, mtu, fmt.Errorf("node said %q", line))
		return
	}
	e, err := d.endpoints()
	if err != nil {
		b.skip("appium", path, mtu, err)
		return
	}
	b.kernelTransfers("appium", path, mtu, h.pid(), info.Address, e)
}

// netns measures the kernel backend against a device side that is a kernel TUN too.
func (b *bench) netns(mtu int) {
	const path = "kernel backend, kernel TUN device side"
	d, err := netnsDevice(deviceTLSConfig(b.devCert), mtu, b.dur)
	if err != nil {
		b.skip("netns", path, mtu, err)
		return
	}
	defer d.stop()
	h, err := startHost(d.addr, "kernel", b.hostCertF, b.hostKeyF, mtu, b.coalesce)
	if err != nil {
		b.skip("netns", path, mtu, err)
		return
	}
	defer h.stop()
	e, err := d.endpoints()
	if err != nil {
		b.skip("netns", path, mtu, err)
		return
	}
	b.kernelTransfers("netns", path, mtu, h.pid(), h.server, e)
}

// ceiling measures one core of `openssl speed` for the negotiated suite's cipher and a
// loopback TCP copy.
func (b *bench) ceiling() {
	b.cipher = opensslCipher(b.suite)
	b.openssl = 0
	out, err := exec.Command("openssl", "speed", "-evp", b.cipher, "-bytes", "16384", "-seconds", "2", "-mr").Output()
	if err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Split(l, ":"); len(f) == 4 && f[0] == "+F" {
				b.openssl, _ = strconv.ParseFloat(f[3], 64)
			}
		}
	}
	if b.openssl == 0 {
		fmt.Fprintf(os.Stderr, "openssl speed -evp %s: %v\n", b.cipher, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	src, _ := net.Listen("tcp", "127.0.0.1:0")
	e := serveEndpoints(ln, src, b.dur)
	defer e.close()
	r := measured("ceiling", "loopback TCP copy", 0, "up", 0, func() xfer { return up(kernelDial(ln.Addr().String()), e) })
	b.loopback = r.rate
}

// opensslCipher maps a TLS suite name to the `openssl speed -evp` cipher doing its bulk work.
func opensslCipher(suite string) string {
	switch {
	case strings.Contains(suite, "AES_256_GCM"):
		return "aes-256-gcm"
	case strings.Contains(suite, "CHACHA20"):
		return "chacha20-poly1305"
	case strings.Contains(suite, "AES_128_CBC"):
		return "aes-128-cbc-hmac-sha1"
	case strings.Contains(suite, "AES_256_CBC"):
		return "aes-256-cbc-hmac-sha1"
	}
	return "aes-128-gcm"
}

// shim measures the shim's relay (client → shim → device) against a direct connection, through
// an iosmux kernel-backend tunnel at the daemon's MTU, and with a loopback upstream alone.
func (b *bench) shim() {
	// Over the tunnel.
	d, err := simDevice(deviceTLSConfig(b.devCert), b.dev, daemonMTU, b.dur)
	if err != nil {
		b.skip("shim", "shim", daemonMTU, err)
		return
	}
	defer d.stop()
	if os.Geteuid() == 0 {
		h, err := startHost(d.addr, "kernel", b.hostCertF, b.hostKeyF, daemonMTU, b.coalesce)
		if err != nil {
			b.skip("shim", "tunnel: shim", daemonMTU, err)
			return
		}
		defer h.stop()
		e, err := d.endpoints()
		if err != nil {
			b.skip("shim", "tunnel: shim", daemonMTU, err)
			return
		}
		b.shimRows("tunnel", daemonMTU, h.server, h.rsd, e)
	}
	// Loopback upstream: the relay's own cost. RSD comes from the simulator on loopback.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listen := func(port int) (net.Listener, error) { return net.Listen("tcp", hostPort("127.0.0.1", port)) }
	r, err := b.dev.ServeRSD(ctx, listen, 0, sim.RSDOptions{})
	if err != nil {
		b.skip("shim", "loopback: shim", 0, err)
		return
	}
	defer r.Close()
	sink, _ := net.Listen("tcp", "127.0.0.1:0")
	src, _ := net.Listen("tcp", "127.0.0.1:0")
	e := serveEndpoints(sink, src, b.dur)
	defer e.close()
	sp, so := e.ports()
	b.shimRowsPorts("loopback", 0, "127.0.0.1", portOf(r.Addr()), e, sp, so)
}

func (b *bench) shimRows(name string, mtu int, server string, rsdPort int, e *endpoints) {
	b.shimRowsPorts(name, mtu, server, rsdPort, e, sinkPort, sourcePort)
}

// shimRowsPorts measures direct and shim transfers. The shim's dialer sends the first two
// services the device lists to the sink and the source (a bench stand-in for two services
// that move bulk data); everything else, RSD included, goes where the shim asks.
func (b *bench) shimRowsPorts(name string, mtu int, server string, rsdPort int, e *endpoints, sp, so int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var host xpc.UUID
	rand.Read(host[:])
	s, err := shim.New(ctx, "127.0.0.1", host, nil)
	if err != nil {
		b.skip("shim", name+": shim", mtu, err)
		return
	}
	defer s.Close()
	var toSink, toSource string // device ports, as strings
	dialer := func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(address)
		switch port {
		case toSink:
			port = strconv.Itoa(sp)
		case toSource:
			port = strconv.Itoa(so)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(host, port))
	}
	h, err := s.SetUpstream(ctx, dialer, server, rsdPort)
	if err != nil || len(h.Services) < 2 {
		b.skip("shim", name+": shim", mtu, fmt.Errorf("upstream: %v", err))
		return
	}
	toSink, toSource = strconv.Itoa(h.Services[0].Port), strconv.Itoa(h.Services[1].Port)
	lp0, _ := s.ServicePort(h.Services[0].Name)
	lp1, _ := s.ServicePort(h.Services[1].Name)
	local := netip.MustParseAddr("127.0.0.1").String()
	// Direct and shim alternate, shimRounds times each; the median of each is reported, since
	// one pair of transfers on a shared machine says little about a 10% difference.
	for _, dir := range []string{"up", "down"} {
		var direct, shimmed []row
		for range shimRounds {
			if dir == "up" {
				direct = append(direct, measured("shim", name+": direct", mtu, dir, 0, func() xfer { return up(kernelDial(hostPort(server, sp)), e) }))
				shimmed = append(shimmed, measured("shim", name+": through the shim", mtu, dir, 0, func() xfer { return up(kernelDial(hostPort(local, lp0)), e) }))
			} else {
				direct = append(direct, measured("shim", name+": direct", mtu, dir, 0, func() xfer { return down(kernelDial(hostPort(server, so)), b.dur) }))
				shimmed = append(shimmed, measured("shim", name+": through the shim", mtu, dir, 0, func() xfer { return down(kernelDial(hostPort(local, lp1)), b.dur) }))
			}
		}
		b.rows = append(b.rows, median(direct), median(shimmed))
	}
}

// shimRounds is how many times each shim and direct transfer runs.
const shimRounds = 3

// median is the row with the median rate (the first failed one, if any failed).
func median(rs []row) row {
	for _, r := range rs {
		if r.err != nil {
			return r
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].rate < rs[j].rate })
	return rs[len(rs)/2]
}

// print writes the table.
func (b *bench) print(took time.Duration) {
	mb := func(r float64) string { return fmt.Sprintf("%.0f", r/1e6) }
	ratio := func(a, base float64) string {
		if a == 0 || base == 0 || math.IsNaN(a) || math.IsNaN(base) {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/base)
	}
	find := func(group string, mtu int, dir string) *row {
		for i := range b.rows {
			if r := &b.rows[i]; r.group == group && r.mtu == mtu && r.dir == dir && r.err == nil {
				return r
			}
		}
		return nil
	}
	rank := map[string]int{"iosmux": 0, "appium": 1, "netns": 2, "shim": 3}
	sort.SliceStable(b.rows, func(i, j int) bool { return rank[b.rows[i].group] < rank[b.rows[j].group] })
	packing := "one TLS record and one write per packet (iosmuxd's CoreDeviceProxy default)"
	if b.coalesce {
		packing = "a batch's packets in full TLS records and one write (iosmuxd --coalesce)"
	}
	setup := "" // rounds, transport and pinning, as the header line states them
	if b.runs > 1 {
		setup = fmt.Sprintf(", each row the median of %d interleaved rounds", b.runs)
	}
	if unixTransport {
		setup += "; host and device joined by a unix socket"
	}
	if hostCPU >= 0 {
		setup += fmt.Sprintf("; forwarders pinned to CPU %d, everything else to CPU 1", hostCPU)
	}
	fmt.Printf("bench/tunnel: %d-core machine, host TLS %s %s; iosmux host → device: %s; each transfer sends for %v%s; took %v\n\n",
		numCPU(), b.tlsVer, b.suite, packing, b.dur, setup, took.Round(time.Second))
	fmt.Printf("| path | MTU | dir | MB/s | × openssl | × loopback | host CPU s/GB | × appium rate | × appium CPU/GB | rest CPU s/GB |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Printf("| ceiling: `openssl speed -evp %s` one core | | | %s | 1 | %s | | | | |\n", b.cipher, mb(b.openssl), ratio(b.openssl, b.loopback))
	fmt.Printf("| ceiling: loopback TCP copy | | | %s | %s | 1 | | | | |\n", mb(b.loopback), ratio(b.loopback, b.openssl))
	for _, r := range b.rows {
		m := strconv.Itoa(r.mtu)
		if r.mtu == 0 {
			m = ""
		}
		if r.err != nil {
			fmt.Printf("| %s | %s | %s | not measured: %v | | | | | | |\n", r.path, m, r.dir, r.err)
			continue
		}
		cpu := "-"
		if !math.IsNaN(r.cpuPerGB) {
			cpu = fmt.Sprintf("%.2f", r.cpuPerGB)
		}
		vsRate, vsCPU := "", ""
		if a := find("appium", r.mtu, r.dir); a != nil && r.group != "appium" && r.group != "shim" {
			vsRate, vsCPU = ratio(r.rate, a.rate), ratio(r.cpuPerGB, a.cpuPerGB)
		}
		if r.group == "shim" && strings.HasSuffix(r.path, "through the shim") {
			base := strings.TrimSuffix(r.path, "through the shim") + "direct"
			for _, d := range b.rows {
				if d.path == base && d.dir == r.dir && d.err == nil {
					vsRate = ratio(r.rate, d.rate) + " of direct"
				}
			}
		}
		rest := "-"
		if !math.IsNaN(r.selfPerGB) {
			rest = fmt.Sprintf("%.2f", r.selfPerGB)
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.path, m, r.dir, mb(r.rate),
			ratio(r.rate, b.openssl), ratio(r.rate, b.loopback), cpu, vsRate, vsCPU, rest)
	}
	fmt.Println("\nup = host → device, down = device → host. Host CPU is the tunnel process's own (iosmux's host child, or appium's" +
		" node process); rest is this process's: the simulated device side and the kernel-socket ends of the transfers.")
}
