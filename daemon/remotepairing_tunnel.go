package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tlspsk"
)

// TCP keepalive of a TLS-PSK tunnel connection, as pymobiledevice3 sets it (tunnel.md §3): a
// phone that leaves Wi-Fi is noticed within about 12 s.
const (
	tunnelKeepIdle     = 3 * time.Second
	tunnelKeepInterval = 3 * time.Second
	tunnelKeepCount    = 3
)

// pair runs pair-setup with the device (the user taps Trust) and stores the new record.
func (r *RemotePairing) pair(ctx context.Context, dev Device, tg target, stage func(string)) (*pairrecord.Remote, error) {
	rec, err := pairrecord.NewRemote(pairrecord.HostIdentifier(r.hostName()), dev.UDID)
	if err != nil {
		return nil, err
	}
	ctl, info, err := r.dial(ctx, tg, rec, stage)
	if err != nil {
		return nil, err
	}
	defer ctl.closer.Close()
	udid := dev.UDID
	if udid == "" { // a device known only by its address: the handshake names it
		udid = info.UDID
	}
	if !pairrecord.ValidUDID(udid) {
		return nil, fmt.Errorf("pair-setup: the device's handshake names no usable UDID (%q)", info.UDID)
	}
	rec.DeviceUDID = udid
	name := info.DeviceName
	if name == "" {
		name = dev.UDID
	}
	stage(StagePairing + ": tap Trust on " + name)
	r.Log.Info("tap Trust on "+name, "udid", dev.UDID, "via", "remotepairing")
	limit := r.PairTimeout
	if limit <= 0 {
		limit = PairTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	peer, err := ctl.host.Setup(pctx)
	if err != nil {
		if pctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("pair-setup: nobody answered the Trust prompt on %s within %s", name, limit)
		}
		return nil, fmt.Errorf("pair-setup: %w", err)
	}
	rec.DeviceIdentifier = peer.Identifier
	rec.DeviceLTPK = peer.PublicKey
	if v, ok := peer.Info.Get("altIRK"); ok {
		rec.DeviceAltIRK, _ = v.([]byte)
	}
	if r.Store == nil {
		return nil, errors.New("pair-setup: no store for the new RemotePairing record")
	}
	if err := r.Store.SaveRemote(udid, rec); err != nil {
		return nil, fmt.Errorf("saving the new RemotePairing record: %w", err)
	}
	r.Log.Info("paired", "udid", udid, "name", name, "via", "remotepairing")
	return rec, nil
}

// PairDevice runs pair-setup with the device at dev's RSDAddr (untrusted) or PairingAddr, even
// when a record exists, stores the record and returns the device's UDID ('iosmuxd pair').
func (r *RemotePairing) PairDevice(ctx context.Context, dev Device, stage func(string)) (string, error) {
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	tg, err := locate(ctx, dev, stage)
	if errors.Is(err, ErrNotUntrusted) {
		return "", fmt.Errorf("%s is a trusted RSD (already tunnelled): nothing to pair", dev.RSDAddr)
	}
	if err != nil {
		return "", err
	}
	rec, err := r.pair(ctx, dev, tg, stage)
	if err != nil {
		return "", err
	}
	return rec.DeviceUDID, nil
}

// tunnel asks the device for a tunnel listener keyed with psk and brings the tunnel up. The
// control channel stays open for the tunnel's life (tunnel.md §2: closing it may end the tunnel
// on a phone, UNCONFIRMED) and closes with it.
func (r *RemotePairing) tunnel(ctx context.Context, ctl *control, psk []byte, info Info, stage func(string)) (Tunnel, Info, error) {
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	proto := r.Protocol
	if proto == "" {
		proto = ProtocolTCP
	}
	t, err := r.openTransport(sctx, ctl, psk, proto, stage)
	if err != nil {
		ctl.closer.Close()
		return nil, info, err
	}
	return &remoteTunnel{Tunnel: t, control: ctl.closer}, info, nil
}

// openTransport runs createListener, connects and runs the CDTunnel handshake.
func (r *RemotePairing) openTransport(ctx context.Context, ctl *control, psk []byte, proto string, stage func(string)) (*tunnel.Tunnel, error) {
	if proto != ProtocolTCP {
		return nil, fmt.Errorf("tunnel protocol %q: not supported (use %q)", proto, ProtocolTCP)
	}
	stage("createListener " + proto)
	res, err := ctl.host.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": psk, "transportProtocolType": proto})
	if err != nil {
		return nil, fmt.Errorf("createListener: %w", err)
	}
	port, ok := pairing.Uint(res["port"])
	if !ok || port == 0 || port > 65535 {
		return nil, fmt.Errorf("createListener: reply has no port: %v", res["port"])
	}
	addr := net.JoinHostPort(ctl.listenHost, strconv.FormatUint(port, 10))
	stage("tunnel connect " + addr)
	d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: tunnelKeepIdle, Interval: tunnelKeepInterval, Count: tunnelKeepCount}}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel connect: %w", err)
	}
	stage("TLS-PSK handshake")
	tc := tlspsk.Client(nc, tlspsk.Config{PSK: psk})
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS-PSK handshake: %w", err)
	}
	stage("CDTunnel handshake")
	return tunnel.Start(ctx, tc, tunnel.Options{Backend: r.Backend, RequestMTU: r.RequestMTU, MTUClamp: r.MTUClamp, Log: r.Log})
}

// remoteTunnel is a RemotePairing tunnel with the control channel it keeps open.
type remoteTunnel struct {
	*tunnel.Tunnel
	control io.Closer
}

// Close ends the tunnel and its control channel.
func (t *remoteTunnel) Close() error {
	err := t.Tunnel.Close()
	t.control.Close()
	return err
}
