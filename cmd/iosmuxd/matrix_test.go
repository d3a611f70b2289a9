package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
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
	addr := startSimulate(t, []string{"udid", "rsd"}, "--rsd", "127.0.0.1:0")["rsd"]
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
