package daemon

import (
	"context"
	"errors"
	"time"
)

// errOpenTimeout is the cause of a build cut by Config.OpenTimeout.
var errOpenTimeout = errors.New("tunnel build timed out")

// buildClock bounds one tunnel build by a timeout that does not run while the user is asked
// to tap Trust (stages for which isUserWait holds: the opener bounds those itself).
type buildClock struct {
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	left    time.Duration
	since   time.Time
	stopped bool // the clock is held during a user wait
}

// newBuildClock returns ctx cut after timeout of device time.
func newBuildClock(parent context.Context, timeout time.Duration) (context.Context, *buildClock) {
	ctx, cancel := context.WithCancelCause(parent)
	c := &buildClock{cancel: cancel, left: timeout, since: time.Now()}
	c.timer = time.AfterFunc(timeout, func() { cancel(errOpenTimeout) })
	return ctx, c
}

// stage holds the clock during user waits and runs it again after them. It is called from
// the goroutine that runs the build.
func (c *buildClock) stage(s string) {
	switch wait := isUserWait(s); {
	case wait && !c.stopped:
		if c.timer.Stop() {
			c.left -= time.Since(c.since)
			c.stopped = true
		}
	case !wait && c.stopped:
		c.stopped = false
		c.since = time.Now()
		c.timer.Reset(max(c.left, 0))
	}
}

// stop releases the clock's context and timer.
func (c *buildClock) stop() {
	c.timer.Stop()
	c.cancel(nil)
}
