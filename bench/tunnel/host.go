package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/tunnel"
)

// hostTLSConfig is the host's TLS for CoreDeviceProxy as lockdown.ClientTLSConfig makes it
// (Go's default versions, so TLS 1.3 against the simulator), with a throwaway certificate.
func hostTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates:                []tls.Certificate{cert},
		InsecureSkipVerify:          true,
		MinVersion:                  tls.VersionTLS12,
		DynamicRecordSizingDisabled: true,
	}
}

// runHost is the child process: iosmux's host side of one tunnel (what iosmuxd runs per
// device), so that its CPU time is measured apart from the simulated device. It prints
// "ready <server address> <rsd port> <tls version> <suite>" and then runs "up ADDR SECONDS" / "down ADDR SECONDS"
// commands from stdin (userspace backend: the transfer's host end lives in this process),
// answering "done BYTES NANOSECONDS"; stdin's end closes the tunnel.
func runHost(connect, backend, certFile, keyFile string, mtu int, coalesce bool) error {
	if f := os.Getenv("IOSMUX_BENCH_HOST_PROFILE"); f != "" { // a CPU profile of the host side
		pf, err := os.Create(fmt.Sprintf("%s.%d", f, os.Getpid()))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(pf)
		defer pprof.StopCPUProfile()
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	nc, err := dialDevice(ctx, connect)
	if err != nil {
		return err
	}
	tc := tls.Client(cork.New(nc), hostTLSConfig(cert)) // as lockdown.ConnectService does
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	st := tc.ConnectionState()
	opts := tunnel.Options{RequestMTU: mtu, OnePacketPerWrite: !coalesce}
	if backend == "kernel" {
		opts.Backend = tunnel.Kernel{Name: "iosbench%d"}
	}
	t, err := tunnel.Start(ctx, tc, opts)
	if err != nil {
		return err
	}
	defer t.Close()
	fmt.Printf("ready %s %d %s %s\n", t.ServerAddress(), t.RSDPort(), strings.ReplaceAll(tls.VersionName(st.Version), " ", ""), tls.CipherSuiteName(st.CipherSuite))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return fmt.Errorf("bad command %q", sc.Text())
		}
		secs, _ := strconv.ParseFloat(f[2], 64)
		d := time.Duration(secs * float64(time.Second))
		dial := func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return t.DialContext(ctx, "tcp", f[1])
		}
		var x xfer
		switch f[0] {
		case "up":
			c, err := dial()
			if err == nil {
				err = sendFor(c, d)
				c.Close()
			}
			x.err = err
		case "down":
			x = down(dial, d)
		}
		if x.err != nil {
			fmt.Printf("error %v\n", x.err)
			continue
		}
		fmt.Printf("done %d %d\n", x.bytes, x.dur.Nanoseconds())
	}
	return nil
}

// hostProc is a running host child (or any forwarder process) the bench measures.
type hostProc struct {
	cmd    *exec.Cmd
	stdin  interface{ Close() error }
	lines  *bufio.Scanner
	in     *bufio.Writer
	server string // device address inside the tunnel
	rsd    int    // its RSD port
	tlsVer string
	suite  string
}

// startHost runs this binary as an iosmux host child against the device at connect.
func startHost(connect, backend, certFile, keyFile string, mtu int, coalesce bool) (*hostProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-role=host", "-connect="+connect, "-backend="+backend,
		"-cert="+certFile, "-key="+keyFile, "-mtu="+strconv.Itoa(mtu), "-coalesce="+strconv.FormatBool(coalesce))
	cmd.Stderr = os.Stderr
	h, err := startProc(cmd)
	if err != nil {
		return nil, err
	}
	line, err := h.line(20 * time.Second)
	if err != nil {
		h.stop()
		return nil, fmt.Errorf("iosmux host: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "ready" {
		h.stop()
		return nil, fmt.Errorf("iosmux host said %q", line)
	}
	h.server, h.tlsVer, h.suite = f[1], f[3], f[4]
	h.rsd, _ = strconv.Atoi(f[2])
	return h, nil
}

// hostCPU is the CPU a forwarder child runs on with -pin (the bench itself runs on the other), or -1.
var hostCPU = -1

// startProc starts a forwarder child, on hostCPU when pinned.
func startProc(cmd *exec.Cmd) (*hostProc, error) {
	if hostCPU >= 0 {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("-pin: %w", err)
		}
		// taskset execs the forwarder, so the measured PID stays the forwarder's.
		cmd.Args = append([]string{ts, "-c", strconv.Itoa(hostCPU)}, cmd.Args...)
		cmd.Path = ts
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &hostProc{cmd: cmd, stdin: in, in: bufio.NewWriter(in), lines: bufio.NewScanner(out)}, nil
}

// line reads the child's next stdout line within d.
func (h *hostProc) line(d time.Duration) (string, error) {
	got := make(chan bool, 1)
	go func() { got <- h.lines.Scan() }()
	select {
	case ok := <-got:
		if !ok {
			return "", fmt.Errorf("exited: %v", h.lines.Err())
		}
		return h.lines.Text(), nil
	case <-time.After(d):
		return "", fmt.Errorf("no answer within %v", d)
	}
}

// command runs one transfer command in the child and returns its answer.
func (h *hostProc) command(cmd string, d time.Duration) (xfer, error) {
	fmt.Fprintln(h.in, cmd)
	h.in.Flush()
	line, err := h.line(d + 2*ioSlack)
	if err != nil {
		return xfer{}, err
	}
	var n, ns int64
	if _, err := fmt.Sscanf(line, "done %d %d", &n, &ns); err != nil {
		return xfer{}, fmt.Errorf("host: %s", line)
	}
	return xfer{bytes: n, dur: time.Duration(ns)}, nil
}

func (h *hostProc) pid() int { return h.cmd.Process.Pid }

// stop closes the child's stdin (its signal to tear down) and waits, killing it after 10 s.
func (h *hostProc) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}
