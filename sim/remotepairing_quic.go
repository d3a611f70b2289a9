package sim

import (
	"context"
	"fmt"
	"net"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/tunnel/quictunnel"
)

// createQUICListener opens a QUIC listener on host that accepts only the client whose
// certificate key is spki (createListener's key); its certificate is for the device's
// RemotePairing identity key, so devicePublicKey is the same as for TCP (whether a real
// device's QUIC certificate matches devicePublicKey is UNCONFIRMED).
func (d *Device) createQUICListener(ctx context.Context, host string, spki []byte) (pairing.Obj, error) {
	ln, err := quictunnel.Listen(net.JoinHostPort(host, "0"), spki, d.remotePairingState().id.Key)
	if err != nil {
		return nil, fmt.Errorf("createListener: %w", err)
	}
	port := ln.Addr().(*net.UDPAddr).Port
	go d.serveQUICListener(ctx, ln)
	return pairing.Obj{"port": int64(port), "devicePublicKey": ln.PublicKey()}, nil
}

// serveQUICListener serves one QUIC tunnel: the client must connect within
// tunnelListenerWait; the CDTunnel handshake runs on its stream, packets go as datagrams.
func (d *Device) serveQUICListener(ctx context.Context, ln *quictunnel.Listener) {
	wctx, cancel := context.WithTimeout(ctx, tunnelListenerWait)
	c, err := ln.Accept(wctx)
	cancel()
	if err != nil {
		ln.Close()
		d.Log.Info("remotepairing: QUIC tunnel listener closed without a connection", "err", err)
		return
	}
	defer c.Close() // and the listener
	d.Log.Info("remotepairing: QUIC tunnel up", "remote", c.RemoteAddr().String())
	if err := d.serveTunnel(ctx, c, c.Stream(), c.MaxDatagram(), d.TunnelOptions()); err != nil {
		d.Log.Debug("tunnel ended", "service", TunnelServiceName, "transport", "quic", "err", err)
	}
}
