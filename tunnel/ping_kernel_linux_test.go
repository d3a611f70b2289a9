package tunnel

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// TestPingKernel: with the kernel backend the echo goes out through a raw ICMPv6 socket and the
// TUN, and the device's stack answers it. The first echo right after the interface comes up
// is sometimes lost (the kernel's own first packets race with it; the daemon's watch tolerates
// one lost probe), so the test waits for a first reply, then wants three in a row.
func TestPingKernel(t *testing.T) {
	tunneltest.RequireRoot(t)
	hc, dc := tcpPair(t)
	err := tunneltest.InNetNS(func() error {
		p, err := startKernelPair(hc, dc, Options{}, Options{})
		if err != nil {
			return err
		}
		defer p.dev.Close()
		defer p.host.Close()
		ping := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return p.host.Ping(ctx)
		}
		deadline := time.Now().Add(failAfter)
		for err := ping(); err != nil; err = ping() {
			if time.Now().After(deadline) {
				return fmt.Errorf("no echo reply at all: %w", err)
			}
		}
		for i := range 3 {
			if err := ping(); err != nil {
				return fmt.Errorf("echo %d after the first reply: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
