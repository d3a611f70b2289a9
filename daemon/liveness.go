package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/iosmux/iosmux/tunnel"
)

// Ping is the default liveness probe: the tunnel's own Ping (an ICMPv6 echo to the device's
// tunnel address) when it has one and may send it, else a TCP connect to the RSD port that is
// closed at once (no RemoteXPC, no handshake: no RSD peer on the device). A kernel tunnel
// without CAP_NET_RAW (iosmuxd with CAP_NET_ADMIN alone) cannot open the raw ICMPv6 socket, so
// it takes the TCP connect.
func Ping(ctx context.Context, t Tunnel) error {
	if p, ok := t.(Pinger); ok {
		err := p.Ping(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, tunnel.ErrPingNotPermitted) {
			return fmt.Errorf("liveness: %w", err)
		}
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
