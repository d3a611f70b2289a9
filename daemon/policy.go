package daemon

import (
	"errors"
	"strings"
	"time"
)

// The decisions of the device manager, apart from the goroutines that carry them out
// (device.go): which path carries the tunnel, how long to wait after a failure, which waits
// belong to the user, and what a failure makes of the device's state.

// StagePairing starts every stage that waits for the user to answer the Trust dialog.
const StagePairing = "pairing"

// ErrNeedsPairing means the device has no pair record it accepts and the daemon may not pair
// on its own (--no-pair): the device waits for 'iosmuxd pair' or an imported record.
var ErrNeedsPairing = errors.New("the device needs pairing")

// pathRank orders paths: the lowest carries the tunnel. USB first (fast, always trusted),
// then usbmuxd's Network entry (the same phone over Wi-Fi), then an RSD address (given by hand,
// or the USB network interface), then an RPPairing port (Wi-Fi).
func pathRank(p Device) int {
	switch {
	case p.PairingAddr != "":
		return 3
	case p.RSDAddr != "":
		return 2
	case p.ConnectionType == "" || p.ConnectionType == "USB":
		return 0
	}
	return 1
}

// bestPath is the path that should carry the tunnel: the best rank, and among equals the one
// reported first.
func bestPath(paths []Device) (Device, bool) {
	if len(paths) == 0 {
		return Device{}, false
	}
	best := paths[0]
	for _, p := range paths[1:] {
		if pathRank(p) < pathRank(best) {
			best = p
		}
	}
	return best, true
}

// nextBackoff doubles the wait after another failure, up to limit.
func nextBackoff(cur, limit time.Duration) time.Duration { return min(cur*2, limit) }

// isUserWait reports whether a build stage waits for the user rather than the device.
func isUserWait(stage string) bool { return strings.HasPrefix(stage, StagePairing) }

// stateAfter is the state a device waits in after a build failed with err.
func stateAfter(err error) string {
	if errors.Is(err, ErrNeedsPairing) {
		return StateNeedsPairing
	}
	return StateBackoff
}
