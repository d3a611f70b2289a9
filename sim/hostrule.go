package sim

import (
	"sync"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// hostRule is the device's one-host rule on an RSD endpoint: when an RSD peer presents a host
// Handshake UUID that differs from another live peer's, the device closes every advertised
// service. Issue 8 reports this of iOS 27.2; other versions' behaviour is UNCONFIRMED, so the
// simulator enforces it unless RSDOptions.MixedHosts is set: a relay that leaks its clients'
// own UUIDs to the device fails the tests.
type hostRule struct {
	mu     sync.Mutex
	off    bool
	peers  map[*rsd.Conn]xpc.UUID
	seen   []xpc.UUID
	resets int
}

func (h *hostRule) init(off bool) {
	h.off = off
	h.peers = map[*rsd.Conn]xpc.UUID{}
}

// present records that c presented u and returns the other live peers' different UUIDs;
// when there are any (and the rule is on), the caller closes the services.
func (h *hostRule) present(c *rsd.Conn, u xpc.UUID) []xpc.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peers[c] = u
	known := false
	for _, s := range h.seen {
		known = known || s == u
	}
	if !known {
		h.seen = append(h.seen, u)
	}
	var others []xpc.UUID
	for pc, pu := range h.peers {
		if pc != c && pu != u {
			others = append(others, pu)
		}
	}
	if h.off || len(others) == 0 {
		return nil
	}
	h.resets++
	return others
}

// leave forgets a peer whose connection ended.
func (h *hostRule) leave(c *rsd.Conn) {
	h.mu.Lock()
	delete(h.peers, c)
	h.mu.Unlock()
}

// HostUUIDs are the distinct host Handshake UUIDs RSD peers have presented, in order.
func (r *RSD) HostUUIDs() []xpc.UUID {
	r.hosts.mu.Lock()
	defer r.hosts.mu.Unlock()
	return append([]xpc.UUID(nil), r.hosts.seen...)
}

// ServiceResets counts the times the one-host rule closed every service.
func (r *RSD) ServiceResets() int {
	r.hosts.mu.Lock()
	defer r.hosts.mu.Unlock()
	return r.hosts.resets
}
