package daemon

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// Ping is the default liveness probe: the tunnel's own Ping (an ICMPv6 echo to the device's
// tunnel address) when it has one, else a TCP connect to the RSD port that is closed at once
// (no RemoteXPC, no handshake: no RSD peer on the device).
func Ping(ctx context.Context, t Tunnel) error {
	if p, ok := t.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return fmt.Errorf("liveness: %w", err)
		}
		return nil
	}
	nc, err := t.Dial(ctx, "tcp", rsdAddr(t))
	if err != nil {
		return fmt.Errorf("liveness: connect to rsd: %w", err)
	}
	return nc.Close()
}

// CheckRSD is the costly liveness probe iosmux used before Ping: a whole RSD session
// (h2c setup and the ~14 KB handshake) through the tunnel. Kept for comparison
// (--liveness-probe rsd) and for peers that drop ICMPv6.
func CheckRSD(ctx context.Context, t Tunnel) error {
	if err := checkRSD(ctx, t); err != nil {
		return fmt.Errorf("liveness: %w", err)
	}
	return nil
}

// checkRSD runs one RSD handshake through a tunnel.
func checkRSD(ctx context.Context, t Tunnel) error {
	_, err := readHandshake(ctx, t)
	return err
}

func rsdAddr(t Tunnel) string {
	return net.JoinHostPort(t.ServerAddress().String(), strconv.Itoa(t.RSDPort()))
}
