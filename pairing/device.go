package pairing

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// DeviceConfig is what the device role (the simulator) needs.
type DeviceConfig struct {
	Identity  Identity  // device accountID, LTSK, M6 info
	PIN       string    // SRP password; DefaultSetupPIN if empty
	Rand      io.Reader // crypto/rand if nil
	Handshake Obj       // the handshake response body (pairing.md §5)
	// PINPairing is the tvOS flow: the device shows the PIN and answers M1 with M2 straight away,
	// without the awaitingUserConsent event of the iPhone's Trust prompt (pairing.md §7).
	PINPairing bool
	// Paired returns the stored LTPK of a host (pair-verify).
	Paired func(hostID string) (ed25519.PublicKey, bool)
	// Consent asks the user to Trust the host (nil: accepted); with PINPairing, whether the user
	// keeps the PIN on screen rather than cancelling. It may block until ctx ends.
	Consent func(ctx context.Context, hostName string) (bool, error)
	// Refused is told when the device refuses the host in pair-verify (unknown host, bad
	// signature) or pair-setup (wrong PIN, bad M5); the session goes on. nil: not told.
	Refused func(stage string, err error)
	// Store records a host that completed pair-setup.
	Store func(*Peer) error
	// Handle answers a decrypted request; an error becomes errorExtended.
	Handle func(name string, args Obj) (Obj, error)
	// IdleTimeout ends the session when the host sends nothing for this long (0: no limit).
	IdleTimeout time.Duration
}

// ErrIdle reports a host that sent nothing for DeviceConfig.IdleTimeout.
var ErrIdle = errors.New("pairing: device: host idle")

// Device runs the device role of the control channel over a Transport.
type Device struct {
	ep     endpoint
	cfg    DeviceConfig
	verify *VerifyDevice
	setup  *SetupDevice
	ch     *Channel
}

// NewDevice starts a device-side control channel.
func NewDevice(t Transport, cfg DeviceConfig) *Device {
	if cfg.PIN == "" {
		cfg.PIN = DefaultSetupPIN
	}
	return &Device{ep: endpoint{t: t, origin: "device"}, cfg: cfg}
}

// Serve answers the host until the transport fails, ctx ends or the user denies Trust
// (ErrTrustDenied, after sending pairingRejectedWithError).
func (d *Device) Serve(ctx context.Context) error {
	for {
		m, err := d.recv(ctx)
		if err != nil {
			return err
		}
		switch {
		case m.Kind == KindRequest && m.Name == RequestHandshake:
			err = d.ep.send(ctx, "handshake", PlainResponse(RequestHandshake, d.cfg.Handshake))
		case m.Kind == KindEvent && m.Name == EventPairingData:
			err = d.pairingData(ctx, m.Body)
		case m.Kind == KindEvent && m.Name == EventPairVerifyFailed:
			d.verify = nil
		case m.Kind == KindEncrypted:
			err = d.encrypted(ctx, m.Cipher)
		default:
			err = fmt.Errorf("%w: device: unexpected %s %q", ErrProtocol, m.Kind, m.Name)
		}
		if err != nil {
			return err
		}
	}
}

// recv waits for the host's next message, at most IdleTimeout.
func (d *Device) recv(ctx context.Context) (Parsed, error) {
	if d.cfg.IdleTimeout <= 0 {
		return d.ep.recv(ctx, "device")
	}
	ictx, cancel := context.WithTimeout(ctx, d.cfg.IdleTimeout)
	defer cancel()
	m, err := d.ep.recv(ictx, "device")
	// The idle deadline, not the caller's, ended the wait (the connection's deadline may fire a
	// moment before either context's timer).
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		if pd, ok := ctx.Deadline(); !ok || time.Now().Before(pd) {
			return Parsed{}, fmt.Errorf("%w for %v: %w", ErrIdle, d.cfg.IdleTimeout, err)
		}
	}
	return m, err
}

func (d *Device) reply(ctx context.Context, stage, kind string, tlv []byte) error {
	return d.ep.send(ctx, stage, PlainEvent(EventPairingData, PairingData(tlv, kind, false, "")))
}

func (d *Device) pairingData(ctx context.Context, body Obj) error {
	data, err := Bytes(body["data"])
	if err != nil {
		return fmt.Errorf("%w: device: pairingData.data: %v", ErrProtocol, err)
	}
	x, err := DecodeTLV8(data)
	if err != nil {
		return fmt.Errorf("pairing: device: pairingData: %w", err)
	}
	state, _ := x.GetByte(TypeState)
	kind, _ := body["kind"].(string)
	switch {
	case kind == KindVerify && state == StateM1:
		if d.verify, err = NewVerifyDevice(d.cfg.Identity, d.paired, d.cfg.Rand); err != nil {
			return err
		}
		m2, err := d.verify.HandleM1(data)
		if m2 == nil {
			return err
		}
		return d.reply(ctx, "pair-verify M2", kind, m2)
	case kind == KindVerify && state == StateM3 && d.verify != nil:
		m4, verr := d.verify.HandleM3(data)
		if err := d.reply(ctx, "pair-verify M4", kind, m4); err != nil {
			return err
		}
		if verr == nil {
			d.ch, err = NewChannel(d.verify.SharedSecret(), RoleDevice)
			return err
		}
		d.refused("pair-verify", verr)
		return nil // the host sends pairVerifyFailed and may go on to pair-setup
	case kind == KindSetup && state == StateM1:
		return d.setupM1(ctx, body, data)
	case kind == KindSetup && state == StateM3 && d.setup != nil:
		m4, serr := d.setup.HandleM3(data)
		if m4 == nil {
			return serr
		}
		if serr != nil {
			d.setup = nil
			d.refused("pair-setup", serr)
		}
		return d.reply(ctx, "pair-setup M4", kind, m4)
	case kind == KindSetup && state == StateM5 && d.setup != nil:
		m6, host, serr := d.setup.HandleM5(data)
		if m6 == nil {
			return serr
		}
		if serr != nil {
			d.refused("pair-setup", serr)
		}
		if serr == nil && d.cfg.Store != nil {
			if err := d.cfg.Store(host); err != nil {
				return fmt.Errorf("pairing: device: storing host %q: %w", host.Identifier, err)
			}
		}
		if err := d.reply(ctx, "pair-setup M6", kind, m6); err != nil {
			return err
		}
		if serr == nil {
			d.ch, err = NewChannel(d.setup.SessionKey(), RoleDevice)
		}
		d.setup = nil
		return err
	}
	return fmt.Errorf("%w: device: pairingData kind %q state %d out of order", ErrProtocol, kind, state)
}

func (d *Device) setupM1(ctx context.Context, body Obj, data []byte) error {
	name, _ := body["sendingHost"].(string)
	if !d.cfg.PINPairing {
		if err := d.ep.send(ctx, "pair-setup consent", PlainEvent(EventAwaitingConsent, Obj{})); err != nil {
			return err
		}
	}
	ok := true
	if d.cfg.Consent != nil {
		var err error
		if ok, err = d.cfg.Consent(ctx, name); err != nil {
			return fmt.Errorf("pairing: device: Trust prompt: %w", err)
		}
	}
	if !ok {
		rej := Obj{"wrappedError": Obj{"domain": "com.apple.CoreDevice.ControlChannelConnectionError",
			"code": 1, "userInfo": Obj{"NSLocalizedDescription": "The user declined to trust this computer."}}}
		if err := d.ep.send(ctx, "pair-setup rejected", PlainEvent(EventPairingRejected, rej)); err != nil {
			return err
		}
		return fmt.Errorf("%w: by the simulated user", ErrTrustDenied)
	}
	var err error
	if d.setup, err = NewSetupDevice(d.cfg.Identity, d.cfg.PIN, d.cfg.Rand); err != nil {
		return err
	}
	m2, err := d.setup.HandleM1(data)
	if err != nil {
		return err
	}
	return d.reply(ctx, "pair-setup M2", KindSetup, m2)
}

func (d *Device) refused(stage string, err error) {
	if d.cfg.Refused != nil {
		d.cfg.Refused(stage, err)
	}
}

func (d *Device) paired(hostID string) (ed25519.PublicKey, bool) {
	if d.cfg.Paired == nil {
		return nil, false
	}
	return d.cfg.Paired(hostID)
}

func (d *Device) encrypted(ctx context.Context, ct []byte) error {
	if d.ch == nil {
		return fmt.Errorf("%w: device: encrypted message before pair-verify", ErrProtocol)
	}
	pt, err := d.ch.Open(ct)
	if err != nil {
		return fmt.Errorf("pairing: device: %w", err)
	}
	name, args, err := parseEncryptedRequest(pt)
	var result Obj
	if err == nil {
		if d.cfg.Handle == nil {
			err = errors.New("Unsupported operation: " + name)
		} else {
			result, err = d.cfg.Handle(name, args)
		}
	}
	var resp Obj
	if err != nil {
		resp = Obj{KindResponse: Obj{"_1": Obj{"errorExtended": Obj{"_0": Obj{
			"domain": "com.apple.CoreDevice.ControlChannelConnectionError", "code": 3,
			"userInfo": Obj{"NSLocalizedDescription": err.Error()}}}}}}
	} else {
		resp = Obj{KindResponse: Obj{"_1": Obj{name: result}}}
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("pairing: device: response: %w", err)
	}
	rct, err := d.ch.Seal(out)
	if err != nil {
		return err
	}
	return d.ep.send(ctx, "encrypted "+name, EncryptedMessage(rct))
}

// parseEncryptedRequest reads {"request":{"_0":{name:args}}}.
func parseEncryptedRequest(pt []byte) (string, Obj, error) {
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return "", nil, fmt.Errorf("%w: encrypted request: %v", ErrProtocol, err)
	}
	req, err := field(top, KindRequest, "encrypted")
	if err != nil {
		return "", nil, err
	}
	zero, err := field(req, "_0", "request")
	if err != nil {
		return "", nil, err
	}
	name, v, err := only(zero, "request._0")
	if err != nil {
		return "", nil, err
	}
	args, err := obj(v, name)
	return name, args, err
}
