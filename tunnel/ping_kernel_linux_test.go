package tunnel

import (
	"context"
	"testing"

	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// TestPingKernel: with the kernel backend the echo goes out through a raw ICMPv6 socket and the
// TUN, and the device's stack answers it.
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
		ctx, cancel := context.WithTimeout(context.Background(), failAfter)
		defer cancel()
		for range 3 {
			if err := p.host.Ping(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
