package lockdown

import (
	"errors"
	"fmt"

	"github.com/iosmux/iosmux/pairrecord"
)

// Lockdown Error strings (lockdown.md §4).
const (
	CodeInvalidResponse                     = "InvalidResponse"
	CodeMissingKey                          = "MissingKey"
	CodeMissingValue                        = "MissingValue"
	CodeGetProhibited                       = "GetProhibited"
	CodeSetProhibited                       = "SetProhibited"
	CodeRemoveProhibited                    = "RemoveProhibited"
	CodeImmutableValue                      = "ImmutableValue"
	CodePasswordProtected                   = "PasswordProtected"
	CodeUserDeniedPairing                   = "UserDeniedPairing"
	CodePairingDialogResponsePending        = "PairingDialogResponsePending"
	CodeMissingHostID                       = "MissingHostID"
	CodeInvalidHostID                       = "InvalidHostID"
	CodeSessionActive                       = "SessionActive"
	CodeSessionInactive                     = "SessionInactive"
	CodeMissingSessionID                    = "MissingSessionID"
	CodeInvalidSessionID                    = "InvalidSessionID"
	CodeMissingService                      = "MissingService"
	CodeInvalidService                      = "InvalidService"
	CodeServiceLimit                        = "ServiceLimit"
	CodeMissingPairRecord                   = "MissingPairRecord"
	CodeSavePairRecordFailed                = "SavePairRecordFailed"
	CodeInvalidPairRecord                   = "InvalidPairRecord"
	CodeInvalidActivationRecord             = "InvalidActivationRecord"
	CodeMissingActivationRecord             = "MissingActivationRecord"
	CodeServiceProhibited                   = "ServiceProhibited"
	CodeEscrowLocked                        = "EscrowLocked"
	CodePairingProhibitedOverThisConnection = "PairingProhibitedOverThisConnection"
	CodeFMiPProtected                       = "FMiPProtected"
	CodeMCProtected                         = "MCProtected"
	CodeMCChallengeRequired                 = "MCChallengeRequired"
	CodeInvalidConnection                   = "InvalidConnection"
)

// codeHelp explains the errors a user can act on.
var codeHelp = map[string]string{
	CodeInvalidHostID:                       "the device does not know this host: not paired, or the pairing was reset on the device",
	CodePasswordProtected:                   "the device is locked with a passcode: unlock it and try again",
	CodeUserDeniedPairing:                   "the user answered \"Don't Trust\" on the device",
	CodePairingDialogResponsePending:        "the Trust dialog on the device is waiting for an answer",
	CodeInvalidService:                      "the device does not offer this service (or it needs Developer Mode / a mounted image)",
	CodeSessionInactive:                     "no lockdown session is active: StartSession first",
	CodeSessionActive:                       "a lockdown session is already active on this connection",
	CodeInvalidSessionID:                    "the session ID is not the active session's",
	CodeGetProhibited:                       "the value cannot be read on this connection (session or pairing needed)",
	CodeMissingValue:                        "no such value",
	CodeInvalidPairRecord:                   "the device rejected the pair record",
	CodeMissingPairRecord:                   "the device has no pair record for this host",
	CodeEscrowLocked:                        "the escrow bag is locked: unlock the device",
	CodeServiceProhibited:                   "the device refuses to start this service",
	CodePairingProhibitedOverThisConnection: "pairing is not allowed over this connection (use USB)",
}

// Error is a lockdown reply carrying an Error string (or the legacy Result "Failure").
// Compare with errors.Is against the Err* sentinels, which match on Code.
type Error struct {
	Request string // the verb: "StartSession", "Pair", ...
	Code    string // the device's Error string, e.g. "InvalidHostID"
}

func (e *Error) Error() string {
	msg := "lockdown: "
	if e.Request != "" {
		msg += e.Request + ": "
	}
	msg += e.Code
	if h, ok := codeHelp[e.Code]; ok {
		msg += " (" + h + ")"
	}
	return msg
}

// Is matches a sentinel (an *Error with no Request) with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Request == "" && t.Code == e.Code
}

// Sentinels for errors.Is.
var (
	ErrInvalidHostID                = &Error{Code: CodeInvalidHostID}
	ErrPasswordProtected            = &Error{Code: CodePasswordProtected}
	ErrUserDeniedPairing            = &Error{Code: CodeUserDeniedPairing}
	ErrPairingDialogResponsePending = &Error{Code: CodePairingDialogResponsePending}
	ErrInvalidService               = &Error{Code: CodeInvalidService}
	ErrSessionInactive              = &Error{Code: CodeSessionInactive}
	ErrSessionActive                = &Error{Code: CodeSessionActive}
	ErrGetProhibited                = &Error{Code: CodeGetProhibited}
	ErrMissingValue                 = &Error{Code: CodeMissingValue}
	ErrInvalidPairRecord            = &Error{Code: CodeInvalidPairRecord}
)

// ErrProtocol reports a reply that does not follow the lockdown or usbmuxd protocol.
var ErrProtocol = errors.New("lockdown: protocol violation")

// usbmuxd result sentinels; a *MuxError matches them by Number and request.
var (
	ErrBadCommand  = errors.New("usbmuxd: bad command")
	ErrBadDevice   = errors.New("usbmuxd: no such device")
	ErrConnRefused = errors.New("usbmuxd: connection refused by the device")
	ErrBadVersion  = errors.New("usbmuxd: protocol version not supported")
)

// MuxError is a usbmuxd Result with a non-zero Number.
type MuxError struct {
	Request string // MessageType of the request
	Number  int
}

func (e *MuxError) Error() string {
	return fmt.Sprintf("lockdown: usbmuxd %s: result %d (%s)", e.Request, e.Number, e.meaning())
}

func (e *MuxError) meaning() string {
	if e.pairRecordMissing() {
		return "no pair record for this device"
	}
	switch ResultCode(e.Number) {
	case ResultBadCommand:
		return "bad command"
	case ResultBadDevice:
		return "no such device"
	case ResultConnRefused:
		return "connection refused: nothing listens on that device port"
	case ResultNoSuchService:
		return "no such service"
	case ResultBadVersion:
		return "bad protocol version"
	}
	return "error"
}

// pairRecordMissing: libimobiledevice's usbmuxd answers a missing record with errno ENOENT (2).
func (e *MuxError) pairRecordMissing() bool {
	return e.Number == 2 && (e.Request == MsgReadPairRecord || e.Request == MsgDeletePairRecord)
}

// Is matches ErrBadCommand, ErrBadDevice, ErrConnRefused, ErrBadVersion and, for a missing
// pair record, pairrecord.ErrNotFound.
func (e *MuxError) Is(target error) bool {
	switch target {
	case pairrecord.ErrNotFound:
		return e.pairRecordMissing()
	case ErrBadDevice:
		return ResultCode(e.Number) == ResultBadDevice && !e.pairRecordMissing()
	case ErrBadCommand:
		return ResultCode(e.Number) == ResultBadCommand
	case ErrConnRefused:
		return ResultCode(e.Number) == ResultConnRefused
	case ErrBadVersion:
		return ResultCode(e.Number) == ResultBadVersion
	}
	return false
}
