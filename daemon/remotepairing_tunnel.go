package daemon

import (
	"bytes"
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
	"github.com/iosmux/iosmux/tunnel/quictunnel"
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
	switch {
	case r.PIN != "":
		stage(StagePairing + ": using the PIN shown on " + name)
		r.Log.Info("pairing with the PIN shown on "+name, "udid", dev.UDID, "via", "remotepairing")
	case ctl.host.PINOnly():
		// pair-setup stops at M2 with pairing.ErrPINRequired; no PIN is guessed.
		r.Log.Info(name+" pairs with a PIN only: give the PIN it shows (iosmuxd pair --pin)", "udid", dev.UDID)
	default:
		stage(StagePairing + ": tap Trust on " + name)
		r.Log.Info("tap Trust on "+name, "udid", dev.UDID, "via", "remotepairing")
	}
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
	if errors.Is(err, errTCPRefused) {
		// A device that offers only QUIC (tunnel.md §1: QUIC was the first transport; which
		// early iOS 17 versions lack TCP is UNCONFIRMED) gets a QUIC tunnel instead.
		r.Log.Info("the device refused a TCP tunnel: trying QUIC", "err", err)
		tcpErr := err
		if t, err = r.openTransport(sctx, ctl, psk, ProtocolQUIC, stage); err != nil {
			err = fmt.Errorf("%v; then QUIC: %w", tcpErr, err)
		}
	}
	if err != nil {
		ctl.closer.Close()
		return nil, info, err
	}
	return &remoteTunnel{Tunnel: t, control: ctl.closer}, info, nil
}

// errTCPRefused means createListener "tcp" got an error answer from the device.
var errTCPRefused = errors.New("the device refused a TCP tunnel listener")

// ErrQUICUnsupported means the device refused a QUIC tunnel or did not answer one: iOS 18.2
// and later offer only TCP (tunnel.md §1, §4).
var ErrQUICUnsupported = errors.New("the device offers no QUIC tunnel (iOS 18.2 and later offer only TCP: use --protocol tcp)")

// openTransport runs createListener, connects and runs the CDTunnel handshake.
func (r *RemotePairing) openTransport(ctx context.Context, ctl *control, psk []byte, proto string, stage func(string)) (*tunnel.Tunnel, error) {
	switch proto {
	case ProtocolQUIC:
		return r.openQUIC(ctx, ctl, stage)
	case ProtocolTCP:
	default:
		return nil, fmt.Errorf("tunnel protocol %q: not supported (use %q or %q)", proto, ProtocolTCP, ProtocolQUIC)
	}
	addr, _, err := createListener(ctx, ctl, ProtocolTCP, psk, errTCPRefused, stage)
	if err != nil {
		return nil, err
	}
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

// createListener asks the device for a tunnel listener of proto with key and returns its address
// (on the control connection's host) and the whole reply; an error answer from the device
// wraps refused.
func createListener(ctx context.Context, ctl *control, proto string, key []byte, refused error, stage func(string)) (string, pairing.Obj, error) {
	stage("createListener " + proto)
	res, err := ctl.host.Request(ctx, pairing.RequestCreateListener, pairing.Obj{"key": key, "transportProtocolType": proto})
	if err != nil {
		var de *pairing.DeviceError
		if errors.As(err, &de) {
			return "", nil, fmt.Errorf("createListener %s: %w (%w)", proto, refused, err)
		}
		return "", nil, fmt.Errorf("createListener %s: %w", proto, err)
	}
	port, ok := pairing.Uint(res["port"])
	if !ok || port == 0 || port > 65535 {
		return "", nil, fmt.Errorf("createListener %s: reply has no port: %v", proto, res["port"])
	}
	return net.JoinHostPort(ctl.listenHost, strconv.FormatUint(port, 10)), res, nil
}

// openQUIC runs createListener "quic" with a fresh RSA key, dials the QUIC listener with it
// and runs the CDTunnel handshake on its stream; packets then go as datagrams, so the MTU is
// capped to what one datagram carries.
func (r *RemotePairing) openQUIC(ctx context.Context, ctl *control, stage func(string)) (*tunnel.Tunnel, error) {
	stage("QUIC client key")
	key, err := quictunnel.NewClientKey()
	if err != nil {
		return nil, fmt.Errorf("QUIC client key: %w", err)
	}
	spki, err := quictunnel.SPKI(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("QUIC client key: %w", err)
	}
	addr, res, err := createListener(ctx, ctl, ProtocolQUIC, spki, ErrQUICUnsupported, stage)
	if err != nil {
		return nil, err
	}
	devKey, _ := pairing.Bytes(res["devicePublicKey"])
	stage("QUIC connect " + addr)
	qc, err := quictunnel.Dial(ctx, addr, key)
	if err != nil {
		return nil, fmt.Errorf("QUIC tunnel: %w (%v)", ErrQUICUnsupported, err)
	}
	if len(devKey) > 0 && !bytes.Equal(devKey, qc.PeerSPKI()) {
		// Whether the device's QUIC certificate is for devicePublicKey is UNCONFIRMED (tunnel.md §4).
		r.Log.Debug("the device's QUIC certificate is not for its devicePublicKey", "addr", addr)
	}
	req := quictunnel.RequestMTU
	if r.RequestMTU > 0 && r.RequestMTU < req {
		req = r.RequestMTU
	}
	clamp := qc.MaxDatagram()
	if r.MTUClamp > 0 && r.MTUClamp < clamp {
		clamp = r.MTUClamp
	}
	if clamp < tunnel.MinMTU {
		qc.Close()
		return nil, fmt.Errorf("QUIC tunnel: a datagram carries %d bytes, less than IPv6's %d", clamp, tunnel.MinMTU)
	}
	stage("CDTunnel handshake")
	return tunnel.Start(ctx, qc, tunnel.Options{Backend: r.Backend, Handshake: qc.Stream(), Datagrams: true,
		RequestMTU: req, MTUClamp: clamp, Log: r.Log})
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
