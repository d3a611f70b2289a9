package pairing

import (
	"errors"
	"fmt"
)

// PIN lengths accepted: every client known uses 6 digits (pairing.md §7.1; the Apple TV's PIN
// length is UNCONFIRMED), so allow a little either side.
const (
	MinPINLen = 4
	MaxPINLen = 8
)

// ErrPINRequired reports a device that shows a PIN for pair-setup (an Apple TV) when the host
// was given none; nothing was sent after M1, so no PIN try was spent.
var ErrPINRequired = errors.New("pairing: pair-setup: the device shows a PIN and none was given")

// ErrWrongPIN reports that the device refused the PIN given (pair-setup M4 ERROR=authentication).
var ErrWrongPIN = errors.New("pairing: pair-setup: the device refused the PIN")

// CheckPIN reports whether pin can be a pairing PIN: MinPINLen to MaxPINLen ASCII digits.
func CheckPIN(pin string) error {
	if len(pin) < MinPINLen || len(pin) > MaxPINLen {
		return fmt.Errorf("pairing: a PIN is %d to %d digits, got %d characters", MinPINLen, MaxPINLen, len(pin))
	}
	for _, c := range []byte(pin) {
		if c < '0' || c > '9' {
			return errors.New("pairing: a PIN is digits only")
		}
	}
	return nil
}

// pinOnly reports whether a handshake reply says the device pairs with a PIN only
// (deviceOptions.allowsPinlessPairing false; true or absent: a Trust prompt may do).
func pinOnly(reply Obj) bool {
	opts, _ := reply["deviceOptions"].(Obj)
	v, ok := opts["allowsPinlessPairing"].(bool)
	return ok && !v
}

// needsPIN reports, after pair-setup M2, that the device is showing a PIN the host was not given:
// no PIN given, no awaitingUserConsent before M2 (the tvOS flow, pairing.md §7.2) and a handshake
// that allows no pinless pairing. Either sign alone is not enough: the lockdown control channel
// sends no consent event either (§2.3).
func (h *Host) needsPIN() bool {
	return !h.pinGiven && !h.prompted && h.pinOnly
}

// wrongPIN marks a refused M3 as a wrong PIN when a PIN was given.
func (h *Host) wrongPIN(err error) error {
	var pe *PeerError
	if h.pinGiven && errors.As(err, &pe) && pe.Code == ErrorAuthentication {
		return fmt.Errorf("%w: %w", ErrWrongPIN, err)
	}
	return err
}
