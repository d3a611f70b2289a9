package lockdown

import "github.com/iosmux/iosmux/internal/plistlimit"

// MaxPlistDepth bounds container nesting accepted by UnmarshalPlist.
const MaxPlistDepth = plistlimit.MaxDepth

// ErrPlistLimits reports a plist nested too deeply, expanding too far, or with a malformed object graph.
var ErrPlistLimits = plistlimit.ErrLimits

// checkPlistLimits rejects plists whose decoding would recurse or expand without bound.
func checkPlistLimits(data []byte) error { return plistlimit.Check(data, plistlimit.MaxValues) }
