package daemon

import (
	"context"

	"github.com/iosmux/iosmux/lockdown"
)

// OnlyUDIDs wraps a source so that only the listed devices reach the manager (--udid);
// a UDID matches with or without the dash Linux usbmuxd may drop (lockdown.SameUDID).
type OnlyUDIDs struct {
	Source
	UDIDs []string
}

// Allows reports whether udid is one of the listed devices.
func (s OnlyUDIDs) Allows(udid string) bool {
	for _, u := range s.UDIDs {
		if lockdown.SameUDID(u, udid) {
			return true
		}
	}
	return false
}

// Run runs the wrapped source and passes on the events of listed devices only.
func (s OnlyUDIDs) Run(ctx context.Context, out chan<- Event) error {
	in := make(chan Event)
	done := make(chan error, 1)
	go func() { done <- s.Source.Run(ctx, in) }()
	for {
		select {
		case ev := <-in:
			if !s.Allows(ev.Device.UDID) {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return <-done // the source sees ctx too and returns
			}
		case err := <-done:
			return err
		}
	}
}
