package sim

import (
	"context"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"howett.net/plist"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/tunnel/tlspsk"
)

// TunnelServiceName is the untrusted RSD service of the RemotePairing control channel.
const TunnelServiceName = pairing.TunnelServiceName

// remotePairing is the device's RemotePairing state: its long-term identity and the hosts that
// completed pair-setup (kept for the life of the simulated device).
type remotePairing struct {
	id pairing.Identity

	mu    sync.Mutex
	hosts map[string]ed25519.PublicKey
	pin   string // tvOS-style PIN pairing when set (remotepairing_pin.go)
}

var (
	rpMu     sync.Mutex
	rpStates = map[*Device]*remotePairing{}
)

// remotePairingState returns d's RemotePairing state, derived deterministically from its UDID.
func (d *Device) remotePairingState() *remotePairing {
	rpMu.Lock()
	defer rpMu.Unlock()
	if st := rpStates[d]; st != nil {
		return st
	}
	seed := sha512.Sum512([]byte("iosmux sim remotepairing " + d.UDID))
	u := seed[32:48]
	accountID := strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]))
	st := &remotePairing{
		id: pairing.Identity{
			Identifier: accountID,
			Key:        ed25519.NewKeyFromSeed(seed[:32]),
			Info: pairing.Dict{
				{Key: "accountID", Value: accountID},
				{Key: "altIRK", Value: append([]byte{}, seed[48:64]...)},
				{Key: "model", Value: d.ProductType},
				{Key: "name", Value: d.DeviceName},
				{Key: "remotepairing_udid", Value: d.UDID},
				{Key: "btAddr", Value: d.BluetoothAddress},
				{Key: "mac", Value: macBytes(d.WiFiAddress)},
				{Key: "remotepairing_serial_number", Value: d.SerialNumber},
			},
		},
		hosts: map[string]ed25519.PublicKey{},
	}
	rpStates[d] = st
	return st
}

// macBytes parses "aa:bb:…" into 6 bytes (zeros if malformed).
func macBytes(s string) []byte {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return make([]byte, 6)
	}
	return hw
}

// RemotePairingHosts lists the host identifiers that completed RemotePairing pair-setup.
func (d *Device) RemotePairingHosts() []string {
	st := d.remotePairingState()
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]string, 0, len(st.hosts))
	for h := range st.hosts {
		out = append(out, h)
	}
	return out
}

// RemotePairingIdentifier is the device identifier sent in pair-setup M6 and pair-verify V-M2.
func (d *Device) RemotePairingIdentifier() string { return d.remotePairingState().id.Identifier }

// remotePairingHandshake is the handshake reply (pairing.md §5).
func (d *Device) remotePairingHandshake() pairing.Obj {
	kvs, _ := plist.Marshal(map[string]any{}, plist.BinaryFormat)
	return pairing.Obj{
		"wireProtocolVersion":                 int64(pairing.WireProtocolVersion),
		"minimumSupportedWireProtocolVersion": int64(8),
		"deviceOptions": pairing.Obj{
			"allowsPairSetup": true, "allowsPinlessPairing": true, "allowsIncomingTunnelConnections": true,
			"allowsUpgradeOfLockdownPairings": true, "allowsSharingSensitiveInfo": true,
			"allowsPromptlessAutomationPairingUpgrade": false,
		},
		"peerDeviceInfo": pairing.Obj{
			"identifier": d.UDID, "model": d.ProductType, "name": d.DeviceName, "udid": d.UDID,
			"ecid": d.ECID, "deviceKVSIncludesSensitiveInfo": false, "deviceKVSData": kvs,
		},
	}
}

// remotePairingConsent answers the Trust prompt of pair-setup as the device's TrustMode says:
// accept (TrustAccept, TrustAfterPrompt), deny (TrustDeny, TrustLocked), or never (TrustNever).
func (d *Device) remotePairingConsent(ctx context.Context, host string) (bool, error) {
	switch m := d.TrustMode(); m {
	case TrustAccept, TrustAfterPrompt:
		d.Log.Info("remotepairing: Trust accepted", "host", host)
		return true, nil
	case TrustNever:
		d.Log.Info("remotepairing: Trust prompt left unanswered", "host", host)
		<-ctx.Done()
		return false, ctx.Err()
	default:
		d.Log.Info("remotepairing: Trust denied", "host", host, "mode", m.String())
		return false, nil
	}
}

// serveTunnelService runs one connection to the untrusted tunnel service: RemoteXPC setup,
// {ServiceVersion: 2}, then the device role of the control channel until the host hangs up.
func (d *Device) serveTunnelService(ctx context.Context, nc net.Conn) {
	devCtx := ctx // tunnels outlive the control connection (tunnel.md §2: keep it open, UNCONFIRMED)
	remote := nc.RemoteAddr().String()
	c, err := rsd.Server(ctx, nc, rsd.Options{})
	if err != nil {
		d.logDrop(TunnelServiceName, remote, fmt.Errorf("setup: %w", err))
		return
	}
	defer c.Close()
	// The session (and a Trust prompt left open) ends with the connection.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := pairing.SendServiceHello(ctx, c); err != nil {
		d.logDrop(TunnelServiceName, remote, err)
		return
	}
	err = pairing.NewDevice(pairing.NewXPCTransport(c), d.remotePairingConfig(devCtx, nc.LocalAddr())).Serve(ctx)
	d.logDrop(TunnelServiceName, remote, err)
}

// remotePairingConfig is the device role's configuration; listeners bind on local's IP.
func (d *Device) remotePairingConfig(ctx context.Context, local net.Addr) pairing.DeviceConfig {
	st := d.remotePairingState()
	return d.withPairingUI(pairing.DeviceConfig{
		Identity:  st.id,
		Handshake: d.remotePairingHandshake(),
		Paired: func(hid string) (ed25519.PublicKey, bool) {
			st.mu.Lock()
			defer st.mu.Unlock()
			k, ok := st.hosts[hid]
			return k, ok
		},
		Consent:     d.remotePairingConsent,
		IdleTimeout: remotePairingIdle,
		Store: func(p *pairing.Peer) error {
			st.mu.Lock()
			st.hosts[p.Identifier] = p.PublicKey
			st.mu.Unlock()
			d.Log.Info("remotepairing: paired", "host", p.Identifier)
			return nil
		},
		Handle: func(name string, args pairing.Obj) (pairing.Obj, error) {
			if name != pairing.RequestCreateListener {
				return nil, fmt.Errorf("Unsupported operation: %s", name)
			}
			return d.createListener(ctx, local, args)
		},
	})
}

// remotePairingIdle ends a control connection whose host sends nothing for this long; tunnels it
// created keep running (whether a real device closes idle control connections is UNCONFIRMED).
const remotePairingIdle = 10 * time.Minute

// tunnelListenerWait bounds how long a createListener listener waits for the host.
const tunnelListenerWait = 30 * time.Second

// createListener opens a TCP+TLS-PSK listener keyed by the request's key (tunnel.md §2) that
// serves one tunnel (CDTunnel handshake, packets, RSD inside) as CoreDeviceProxy's tunnels do.
func (d *Device) createListener(ctx context.Context, local net.Addr, args pairing.Obj) (pairing.Obj, error) {
	if proto, _ := args["transportProtocolType"].(string); proto != "tcp" {
		return nil, fmt.Errorf("Unsupported operation: transportProtocolType %q (the simulator serves tcp)", proto)
	}
	psk, err := pairing.Bytes(args["key"])
	if err != nil || len(psk) == 0 {
		return nil, errors.New("createListener: key is not a base64 byte string")
	}
	host := "127.0.0.1"
	if ta, ok := local.(*net.TCPAddr); ok {
		host = ta.IP.String()
		if ta.Zone != "" {
			host += "%" + ta.Zone
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("createListener: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(d.remotePairingState().id.Key.Public())
	if err != nil {
		ln.Close()
		return nil, err
	}
	go d.serveTunnelListener(ctx, ln, psk)
	return pairing.Obj{"port": int64(ln.Addr().(*net.TCPAddr).Port), "devicePublicKey": spki}, nil
}

func (d *Device) serveTunnelListener(ctx context.Context, ln net.Listener, psk []byte) {
	defer ln.Close()
	wctx, cancel := context.WithTimeout(ctx, tunnelListenerWait)
	defer cancel()
	stop := context.AfterFunc(wctx, func() { ln.Close() })
	nc, err := ln.Accept()
	stop()
	if err != nil {
		d.Log.Info("remotepairing: tunnel listener closed without a connection", "err", err)
		return
	}
	defer nc.Close()
	c := tlspsk.Server(nc, tlspsk.Config{PSK: psk})
	hctx, hcancel := context.WithTimeout(ctx, tunnelListenerWait)
	err = c.HandshakeContext(hctx)
	hcancel()
	if err != nil {
		d.Log.Info("remotepairing: TLS-PSK handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	d.Log.Info("remotepairing: TLS-PSK tunnel up", "suite", c.Suite())
	if err := d.ServeTunnel(ctx, c, d.TunnelOptions()); err != nil {
		d.Log.Debug("tunnel ended", "service", TunnelServiceName, "err", err)
	}
}

// ServeRemotePairing serves the RPPairing network port (pairing.md §2.2, the `_remotepairing._tcp`
// service) on ln: the same device role as the tunnel service, framed as RPPairing JSON. It
// returns when ctx ends or ln fails.
func (d *Device) ServeRemotePairing(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sim: remotepairing: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stopConn := context.AfterFunc(cctx, func() { nc.Close() })
			defer stopConn()
			err := pairing.NewDevice(pairing.NewFramedTransport(nc), d.remotePairingConfig(ctx, nc.LocalAddr())).Serve(cctx)
			d.logDrop("remotepairing", nc.RemoteAddr().String(), err)
		}()
	}
}
