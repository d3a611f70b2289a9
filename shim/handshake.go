package shim

import (
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// Rewritten is the device handshake h as the shim's RSD endpoint serves it: the device's
// dictionary with each listed service's Port replaced by the shim's local port. The inject
// routes (inject/CONTRACT.md) publish it.
func (s *Shim) Rewritten(h *rsd.Handshake) *xpc.Dict { return s.rewriteHandshake(h) }
