package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrTrustDenied reports that the user refused the device's "Trust This Computer?" prompt.
var ErrTrustDenied = errors.New("pairing: pair-setup: the device refused pairing (Trust denied)")

// HostConfig is what the host role needs.
type HostConfig struct {
	Identity Identity  // HID, LTSK, M5 info
	PIN      string    // SRP password; DefaultSetupPIN if empty
	Name     string    // sendingHost shown by the device
	Rand     io.Reader // crypto/rand if nil
}

// Host runs the host role of the control channel over a Transport.
type Host struct {
	ep  endpoint
	cfg HostConfig
	ch  *Channel
	// PIN pairing (pin.go): a PIN was given; the handshake allows no pinless pairing; the
	// device sent awaitingUserConsent in this pair-setup.
	pinGiven, pinOnly, prompted bool
}

// NewHost starts a host-side control channel.
func NewHost(t Transport, cfg HostConfig) *Host {
	given := cfg.PIN != ""
	if !given {
		cfg.PIN = DefaultSetupPIN
	}
	return &Host{ep: endpoint{t: t, origin: "host"}, cfg: cfg, pinGiven: given}
}

// Handshake sends the handshake request and returns the device's reply (pairing.md §5).
func (h *Host) Handshake(ctx context.Context) (Obj, error) {
	const stage = "handshake"
	req := PlainRequest(RequestHandshake, Obj{"hostOptions": Obj{"attemptPairVerify": true}, "wireProtocolVersion": WireProtocolVersion})
	if err := h.ep.send(ctx, stage, req); err != nil {
		return nil, err
	}
	for {
		m, err := h.ep.recv(ctx, stage)
		if err != nil {
			return nil, err
		}
		if m.Kind == KindResponse && m.Name == RequestHandshake {
			h.pinOnly = pinOnly(m.Body)
			return m.Body, nil
		}
		if m.Kind != KindEvent {
			return nil, fmt.Errorf("%w: %s: unexpected %s %q", ErrProtocol, stage, m.Kind, m.Name)
		}
	}
}

// exchange sends one pairingData TLV and waits for the device's, handling consent events.
func (h *Host) exchange(ctx context.Context, stage, kind string, tlv []byte, start bool) ([]byte, error) {
	host := ""
	if kind == KindSetup {
		host = h.cfg.Name
	}
	if err := h.ep.send(ctx, stage, PlainEvent(EventPairingData, PairingData(tlv, kind, start, host))); err != nil {
		return nil, err
	}
	prompted := false
	for {
		m, err := h.ep.recv(ctx, stage)
		if err != nil {
			if prompted && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
				return nil, fmt.Errorf("pairing: %s: the Trust prompt on the device was not answered: %w", stage, err)
			}
			return nil, err
		}
		switch {
		case m.Kind == KindEvent && m.Name == EventPairingData:
			data, err := Bytes(m.Body["data"])
			if err != nil {
				return nil, fmt.Errorf("%w: %s: pairingData.data: %v", ErrProtocol, stage, err)
			}
			return data, nil
		case m.Kind == KindEvent && m.Name == EventAwaitingConsent:
			prompted = true // the user is looking at the Trust prompt
			h.prompted = true
		case m.Kind == KindEvent && m.Name == EventPairingRejected:
			return nil, fmt.Errorf("%w: %s", ErrTrustDenied, rejectionReason(m.Body))
		default:
			return nil, fmt.Errorf("%w: %s: unexpected %s %q", ErrProtocol, stage, m.Kind, m.Name)
		}
	}
}

func rejectionReason(body Obj) string {
	if we, ok := body["wrappedError"].(map[string]any); ok {
		if ui, ok := we["userInfo"].(map[string]any); ok {
			if s, ok := ui["NSLocalizedDescription"].(string); ok {
				return s
			}
		}
	}
	return "no reason given"
}

// Verify runs pair-verify with the stored identity. On success the encrypted channel is keyed and
// the shared secret (the TLS-PSK for createListener) is returned. On failure it sends
// pairVerifyFailed, so the same connection may go on to Setup.
func (h *Host) Verify(ctx context.Context) ([]byte, error) {
	v, err := NewVerifyHost(h.cfg.Identity, h.cfg.Rand)
	if err != nil {
		return nil, err
	}
	shared, err := h.verify(ctx, v)
	if err != nil {
		var pe *PeerError
		if errors.As(err, &pe) || errors.Is(err, ErrProtocol) || errors.Is(err, ErrDecrypt) {
			if serr := h.ep.send(ctx, "pair-verify failed", PlainEvent(EventPairVerifyFailed, nil)); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return nil, err
	}
	return shared, nil
}

func (h *Host) verify(ctx context.Context, v *VerifyHost) ([]byte, error) {
	m2, err := h.exchange(ctx, "pair-verify M1", KindVerify, v.M1(), true)
	if err != nil {
		return nil, err
	}
	m3, err := v.HandleM2(m2)
	if err != nil {
		return nil, err
	}
	m4, err := h.exchange(ctx, "pair-verify M3", KindVerify, m3, false)
	if err != nil {
		return nil, err
	}
	if err := v.HandleM4(m4); err != nil {
		return nil, err
	}
	if h.ch, err = NewChannel(v.SharedSecret(), RoleHost); err != nil {
		return nil, err
	}
	return v.SharedSecret(), nil
}

// Setup runs pair-setup M1…M6 (the device shows its Trust prompt after M1) and returns the
// device as a Peer to store; the encrypted channel is then keyed with K (pairing.md §7.3).
func (h *Host) Setup(ctx context.Context) (*Peer, error) {
	s, err := NewSetupHost(h.cfg.Identity, h.cfg.PIN, h.cfg.Rand)
	if err != nil {
		return nil, err
	}
	h.prompted = false
	m2, err := h.exchange(ctx, "pair-setup M1", KindSetup, s.M1(), true)
	if err != nil {
		return nil, err
	}
	if h.needsPIN() {
		return nil, ErrPINRequired
	}
	m3, err := s.HandleM2(m2)
	if err != nil {
		return nil, err
	}
	m4, err := h.exchange(ctx, "pair-setup M3", KindSetup, m3, false)
	if err != nil {
		return nil, err
	}
	m5, err := s.HandleM4(m4)
	if err != nil {
		return nil, h.wrongPIN(err)
	}
	m6, err := h.exchange(ctx, "pair-setup M5", KindSetup, m5, false)
	if err != nil {
		return nil, err
	}
	peer, err := s.HandleM6(m6)
	if err != nil {
		return nil, err
	}
	if h.ch, err = NewChannel(s.SessionKey(), RoleHost); err != nil {
		return nil, err
	}
	return peer, nil
}

// DeviceError is an errorExtended answer to an encrypted request.
type DeviceError struct {
	Request, Domain, Description string
	Code                         int64
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("pairing: %s: device error %s/%d: %s", e.Request, e.Domain, e.Code, e.Description)
}

// Request sends an encrypted request (after Verify or Setup) and returns the device's result.
func (h *Host) Request(ctx context.Context, name string, args Obj) (Obj, error) {
	stage := "encrypted " + name
	if h.ch == nil {
		return nil, fmt.Errorf("%w: %s: no verified session", ErrProtocol, stage)
	}
	pt, err := json.Marshal(Obj{KindRequest: Obj{"_0": Obj{name: args}}})
	if err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	ct, err := h.ch.Seal(pt)
	if err != nil {
		return nil, err
	}
	if err := h.ep.send(ctx, stage, EncryptedMessage(ct)); err != nil {
		return nil, err
	}
	for {
		m, err := h.ep.recv(ctx, stage)
		if err != nil {
			return nil, err
		}
		if m.Kind != KindEncrypted {
			continue // plain events may interleave; UNCONFIRMED which
		}
		plain, err := h.ch.Open(m.Cipher)
		if err != nil {
			return nil, fmt.Errorf("pairing: %s: %w", stage, err)
		}
		return parseEncryptedResponse(stage, name, plain)
	}
}

func parseEncryptedResponse(stage, name string, plain []byte) (Obj, error) {
	var top struct {
		Response struct {
			One map[string]json.RawMessage `json:"_1"`
		} `json:"response"`
	}
	if err := json.Unmarshal(plain, &top); err != nil || top.Response.One == nil {
		return nil, fmt.Errorf("%w: %s: response is not {\"response\":{\"_1\":…}}", ErrProtocol, stage)
	}
	if raw, ok := top.Response.One["errorExtended"]; ok {
		var e struct {
			Zero struct {
				Domain   string `json:"domain"`
				Code     int64  `json:"code"`
				UserInfo struct {
					Desc string `json:"NSLocalizedDescription"`
				} `json:"userInfo"`
			} `json:"_0"`
		}
		_ = json.Unmarshal(raw, &e)
		return nil, &DeviceError{Request: name, Domain: e.Zero.Domain, Code: e.Zero.Code, Description: e.Zero.UserInfo.Desc}
	}
	raw, ok := top.Response.One[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s: response names no %q", ErrProtocol, stage, name)
	}
	var res Obj
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("%w: %s: result: %v", ErrProtocol, stage, err)
	}
	return res, nil
}
