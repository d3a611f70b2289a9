package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/tunnel"
)

// Tunnel transports a RemotePairing createListener may ask for (tunnel.md §2).
const (
	ProtocolTCP  = "tcp"  // TCP + TLS 1.2 PSK: every iOS 17+ device (18.2+ offers only this)
	ProtocolQUIC = "quic" // QUIC + TLS 1.3: iOS 17.0–18.1 only
)

// trustedLockdownService is listed by a trusted RSD only (rsd.md §4): a trusted RSD lists the
// untrusted tunnel service too, so that alone does not tell them apart.
const trustedLockdownService = "com.apple.mobile.lockdown.remote.trusted"

// ErrNotUntrusted means an RSD endpoint is not an untrusted one with a RemotePairing tunnel
// service: it is a trusted RSD (another tool's tunnel), to be used as it is.
var ErrNotUntrusted = errors.New("rsd endpoint offers no RemotePairing tunnel service")

// RemotePairing opens tunnels over RemotePairing (pairing.md, tunnel.md §2–§4): pair-verify with
// the device's RemotePairing record (pair-setup with the Trust prompt when there is none), a
// createListener, and the TLS-PSK (or QUIC) tunnel. The control channel is the tunnel service
// of the device's untrusted RSD (Device.RSDAddr: the USB network interface, or an address given
// by hand) or its RPPairing network port (Device.PairingAddr: Wi-Fi).
type RemotePairing struct {
	// Store keeps the RemotePairing records (remote_<UDID>.plist, 0600).
	Store *pairrecord.Store
	// ImportPymobiledevice3 also looks for pymobiledevice3's remote_<UDID>.plist.
	ImportPymobiledevice3 bool
	// Pair runs pair-setup (the device shows Trust) when there is no record or it is refused.
	Pair bool
	// PIN is the SRP password of pair-setup when the device shows one (Apple TV); "" for the
	// Trust prompt (pairing.ErrPINRequired when the device turns out to want a PIN).
	PIN string
	// PairTimeout bounds the wait for the user to tap Trust; 0 means PairTimeout.
	PairTimeout time.Duration
	// HostName is the name the Trust prompt shows and the source of a new record's host
	// identifier (as pymobiledevice3 derives it); os.Hostname() when "".
	HostName string
	// Protocol is ProtocolTCP (the default when "") or ProtocolQUIC.
	Protocol string
	// Backend makes the host side of the tunnel.
	Backend tunnel.Backend
	// RequestMTU is asked for in the CDTunnel handshake (0: tunnel.DefaultRequestMTU on TCP);
	// MTUClamp caps the device MTU.
	RequestMTU, MTUClamp int
	Log                  *slog.Logger
}

// control is one RemotePairing control channel.
type control struct {
	host       *pairing.Host
	closer     io.Closer
	listenHost string // where the device's tunnel listeners are: the control connection's host
}

// Open builds one tunnel to dev over RemotePairing.
func (r *RemotePairing) Open(ctx context.Context, dev Device, stage func(string)) (Tunnel, Info, error) {
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	tg, err := locate(ctx, dev, stage)
	if err != nil {
		return nil, Info{}, err
	}
	stage("remotepairing record")
	rec, err := r.record(dev.UDID)
	if err != nil && !errors.Is(err, pairrecord.ErrNoRemoteRecord) {
		return nil, Info{}, err
	}
	var info Info
	if rec != nil {
		ctl, di, err := r.dial(ctx, tg, rec, stage)
		if err != nil {
			return nil, Info{}, err
		}
		info = di
		psk, err := r.verify(ctx, ctl, stage)
		if err == nil {
			return r.tunnel(ctx, ctl, psk, info, stage)
		}
		ctl.closer.Close()
		if !refusedRemote(err) {
			return nil, info, err
		}
		r.Log.Warn("the device refused its RemotePairing record", "udid", dev.UDID, "host_identifier", rec.Identifier, "err", err)
		if !r.mayPair(dev) {
			return nil, info, fmt.Errorf("%w: the device refused its RemotePairing record (%v) and pairing is off: pair with 'iosmuxd pair'", ErrNeedsPairing, err)
		}
	} else if !r.mayPair(dev) {
		return nil, Info{}, fmt.Errorf("%w: no RemotePairing record for it (pair with 'iosmuxd pair' or import one)", ErrNeedsPairing)
	}
	if rec, err = r.pair(ctx, dev, tg, stage); err != nil {
		return nil, info, err
	}
	// A fresh control connection for pair-verify: the session keys of pair-setup are not the
	// ones a tunnel needs (pairing.md §8), and real clients reconnect too.
	ctl, di, err := r.dial(ctx, tg, rec, stage)
	if err != nil {
		return nil, info, err
	}
	psk, err := r.verify(ctx, ctl, stage)
	if err != nil {
		ctl.closer.Close()
		return nil, di, err
	}
	return r.tunnel(ctx, ctl, psk, di, stage)
}

// mayPair reports whether Open may run pair-setup with dev: only when Pair is set, and never for
// a device found on the network (the wifi source): anyone on the LAN can advertise a phone's
// auth tag, and pair-setup with an impostor would replace the phone's record. Such a device
// without a record it accepts waits in 'needs pairing' for an explicit 'iosmuxd pair'.
func (r *RemotePairing) mayPair(dev Device) bool { return r.Pair && dev.Source != SourceWiFi }

// refusedRemote reports whether pair-verify failed because the device does not know the record
// (reset, erased, paired again) rather than for another reason.
func refusedRemote(err error) bool {
	var pe *pairing.PeerError
	return errors.As(err, &pe)
}

// dial opens the control channel for dev and runs the pairing handshake.
func (r *RemotePairing) dial(ctx context.Context, tg target, rec *pairrecord.Remote, stage func(string)) (*control, Info, error) {
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	ctl, err := r.connect(sctx, tg, rec, stage)
	if err != nil {
		return nil, Info{}, err
	}
	stage("remotepairing handshake")
	res, err := ctl.host.Handshake(sctx)
	if err != nil {
		ctl.closer.Close()
		return nil, Info{}, err
	}
	return ctl, handshakeInfo(res), nil
}

// handshakeInfo reads what the status route shows from the handshake's peerDeviceInfo.
func handshakeInfo(res pairing.Obj) Info {
	pdi, _ := res["peerDeviceInfo"].(map[string]any)
	s := func(k string) string { v, _ := pdi[k].(string); return v }
	return Info{UDID: s("udid"), ProductType: s("model"), DeviceName: s("name")}
}

// target is where a device's control channel is: an RPPairing port, or a RemoteXPC service.
type target struct {
	addr       string
	framed     bool   // RPPairing JSON framing (network port), else RemoteXPC (tunnel service)
	listenHost string // the device's address: its tunnel listeners are there
}

// locate finds dev's control channel: the RPPairing port, or the tunnel service its untrusted
// RSD lists (ErrNotUntrusted when the RSD lists none).
func locate(ctx context.Context, dev Device, stage func(string)) (target, error) {
	if dev.PairingAddr != "" {
		host, _, err := net.SplitHostPort(dev.PairingAddr)
		if err != nil {
			return target{}, fmt.Errorf("remotepairing address %q: %w", dev.PairingAddr, err)
		}
		return target{addr: dev.PairingAddr, framed: true, listenHost: host}, nil
	}
	stage("untrusted rsd " + dev.RSDAddr)
	host, _, err := net.SplitHostPort(dev.RSDAddr)
	if err != nil {
		return target{}, fmt.Errorf("rsd address %q: %w", dev.RSDAddr, err)
	}
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	c, h, err := rsd.Dial(sctx, dev.RSDAddr, nil)
	if err != nil {
		return target{}, fmt.Errorf("untrusted rsd: %w", err)
	}
	c.Close()
	svc, ok := h.Service(pairing.TunnelServiceName)
	if _, trusted := h.Service(trustedLockdownService); !ok || trusted {
		return target{}, ErrNotUntrusted
	}
	return target{addr: net.JoinHostPort(host, fmt.Sprint(svc.Port)), listenHost: host}, nil
}

// connect opens the control channel at tg with rec's identity.
func (r *RemotePairing) connect(ctx context.Context, tg target, rec *pairrecord.Remote, stage func(string)) (*control, error) {
	cfg := pairing.HostConfig{Identity: hostIdentity(rec), Name: r.hostName(), PIN: r.PIN}
	if tg.framed {
		stage("remotepairing connect " + tg.addr)
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", tg.addr)
		if err != nil {
			return nil, fmt.Errorf("remotepairing connect: %w", err)
		}
		return &control{host: pairing.NewHost(pairing.NewFramedTransport(nc), cfg), closer: nc, listenHost: tg.listenHost}, nil
	}
	stage("tunnel service " + tg.addr)
	c, err := rsd.DialClient(ctx, tg.addr, rsd.Options{})
	if err != nil {
		return nil, fmt.Errorf("tunnel service: %w", err)
	}
	if _, err := pairing.ReadServiceHello(ctx, c); err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel service: %w", err)
	}
	return &control{host: pairing.NewHost(pairing.NewXPCTransport(c), cfg), closer: c, listenHost: tg.listenHost}, nil
}

// hostIdentity is the pairing identity of a record; the M5 altIRK is derived from its key, so
// it stays the same without being stored.
func hostIdentity(rec *pairrecord.Remote) pairing.Identity {
	seed := sha256.Sum256(append([]byte("iosmux host altIRK "), rec.PrivateKey...))
	return pairing.Identity{Identifier: rec.Identifier, Key: rec.Key(),
		Info: pairing.HostInfo(rec.Identifier, "iosmux", seed[:16])}
}

func (r *RemotePairing) hostName() string {
	if r.HostName != "" {
		return r.HostName
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "iosmux"
}

// verify runs pair-verify and returns the shared secret, the tunnel's PSK.
func (r *RemotePairing) verify(ctx context.Context, ctl *control, stage func(string)) ([]byte, error) {
	stage("pair-verify")
	sctx, cancel := context.WithTimeout(ctx, StageTimeout)
	defer cancel()
	return ctl.host.Verify(sctx)
}

// record finds dev's RemotePairing record: iosmux's store, then pymobiledevice3's (copied in).
func (r *RemotePairing) record(udid string) (*pairrecord.Remote, error) {
	if r.Store == nil {
		return nil, fmt.Errorf("%w for %s (no store)", pairrecord.ErrNoRemoteRecord, udid)
	}
	rec, err := r.Store.LoadRemote(udid)
	if err == nil || !errors.Is(err, pairrecord.ErrNoRemoteRecord) || !r.ImportPymobiledevice3 {
		return rec, err
	}
	path, perr := pairrecord.Pymobiledevice3Remote(udid)
	if perr != nil {
		return nil, err
	}
	imp, ierr := pairrecord.LoadRemoteFile(path, r.HostName)
	if ierr != nil {
		if !errors.Is(ierr, os.ErrNotExist) {
			r.Log.Warn("pymobiledevice3's RemotePairing record is unusable", "path", path, "err", ierr)
		}
		return nil, err
	}
	if imp.DeviceUDID == "" {
		imp.DeviceUDID = udid
	}
	if serr := r.Store.SaveRemote(udid, imp); serr != nil {
		r.Log.Warn("could not keep a copy of the RemotePairing record", "udid", udid, "err", serr)
	} else {
		r.Log.Info("imported RemotePairing record", "udid", udid, "from", path)
	}
	return imp, nil
}
