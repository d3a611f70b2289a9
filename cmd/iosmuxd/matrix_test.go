package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/rsd/rsdtest"
)

// matrixRuns is how many times each client order runs against each endpoint.
const matrixRuns = 20

// matrixEnv makes this test binary run orderMatrix against the address it names and exit:
// the kernel test runs it inside its network namespace.
const matrixEnv = "IOSMUXD_ORDER_MATRIX"

func init() {
	if addr := os.Getenv(matrixEnv); addr != "" {
		if err := rsdtest.Matrix(addr, matrixRuns, nil); err != nil {
			fmt.Fprintln(os.Stderr, "order matrix:", err)
			os.Exit(1)
		}
		fmt.Println("order matrix passed")
		os.Exit(0)
	}
}

// TestOrderMatrixAgainstSimulate runs the client-order matrix against `iosmuxd simulate --rsd`.
func TestOrderMatrixAgainstSimulate(t *testing.T) {
	cmd := exec.Command(os.Args[0], "simulate", "--rsd", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "IOSMUXD_RUN_MAIN=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("simulate log:\n%s", logs.String())
		}
	}()
	var udid, addr string
	sc := bufio.NewScanner(out)
	for addr == "" && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "udid "); ok {
			udid = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "rsd "); ok {
			addr = v
		}
	}
	if addr == "" || udid == "" {
		t.Fatalf("simulate printed no udid/rsd lines")
	}
	if err := rsdtest.Matrix(addr, matrixRuns, nil); err != nil {
		t.Fatal(err)
	}
}

// TestOrderMatrixAgainstShim runs the client-order matrix against the loopback shim endpoint
// the daemon advertises in GET /.
func TestOrderMatrixAgainstShim(t *testing.T) {
	e := startEnv(t, 1, false)
	d := e.devs[0]
	e.waitPublished(d.UDID)
	entry := e.tunnels()[d.UDID][0]
	if err := rsdtest.Matrix(net.JoinHostPort(entry.Address, strconv.Itoa(entry.Port)), matrixRuns, d.Identity()); err != nil {
		t.Fatal(err)
	}
}
