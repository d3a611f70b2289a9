package sim

import (
	"context"
	"maps"

	"github.com/iosmux/iosmux/pairing"
)

// SetRemotePairingPIN makes RemotePairing pair-setup (RPPairing port and tunnel service) work as
// on tvOS: the device "shows" pin (see pairing.CheckPIN), the SRP password is pin, and M1 is
// answered with M2 at once, without the awaitingUserConsent event (pairing.md §7.2). "" restores
// the iPhone's Trust prompt and fixed password. The TrustMode still applies: deny or locked is
// the user cancelling the PIN screen (pairingRejectedWithError), never leaves it up.
func (d *Device) SetRemotePairingPIN(pin string) error {
	if pin != "" {
		if err := pairing.CheckPIN(pin); err != nil {
			return err
		}
	}
	st := d.remotePairingState()
	st.mu.Lock()
	st.pin = pin
	st.mu.Unlock()
	return nil
}

// RemotePairingPIN is the PIN set by SetRemotePairingPIN ("" when pairing uses the Trust prompt).
func (d *Device) RemotePairingPIN() string {
	st := d.remotePairingState()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pin
}

// withPairingUI adds what the device's screen does to cfg: refusals are logged, and with a PIN
// set pair-setup is PIN pairing and the handshake says allowsPinlessPairing false (as an Apple
// TV's is taken to; UNCONFIRMED).
func (d *Device) withPairingUI(cfg pairing.DeviceConfig) pairing.DeviceConfig {
	cfg.Refused = func(stage string, err error) {
		d.Log.Warn("remotepairing: "+stage+" refused", "err", err)
	}
	pin := d.RemotePairingPIN()
	if pin == "" {
		return cfg
	}
	cfg.PIN = pin
	cfg.PINPairing = true
	cfg.Consent = d.remotePairingPINShown
	hs := maps.Clone(cfg.Handshake)
	if opts, ok := hs["deviceOptions"].(pairing.Obj); ok {
		opts = maps.Clone(opts)
		opts["allowsPinlessPairing"] = false
		hs["deviceOptions"] = opts
	}
	cfg.Handshake = hs
	return cfg
}

// remotePairingPINShown is the tvOS PIN screen: the user reads the PIN off it (TrustAccept,
// TrustAfterPrompt), cancels it (TrustDeny, TrustLocked) or leaves it up (TrustNever). The PIN
// itself is never logged.
func (d *Device) remotePairingPINShown(ctx context.Context, host string) (bool, error) {
	d.Log.Info("remotepairing: showing the pairing PIN", "host", host)
	switch m := d.TrustMode(); m {
	case TrustAccept, TrustAfterPrompt:
		return true, nil
	case TrustNever:
		<-ctx.Done()
		return false, ctx.Err()
	default:
		d.Log.Info("remotepairing: PIN screen cancelled (Trust denied)", "host", host, "mode", m.String())
		return false, nil
	}
}
