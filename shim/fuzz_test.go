package shim

import (
	"context"
	"net"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// FuzzRewriteHandshake: a device Handshake from arbitrary bytes is rewritten for the shim's
// endpoints without panicking, with bounded allocation, and keeps its identity and its keys.
func FuzzRewriteHandshake(f *testing.F) {
	d := sim.NewDevice(profile.Default(), "fuzz", nil)
	r, err := d.ServeRSD(context.Background(), sim.TCPListen("127.0.0.1"), 0, sim.RSDOptions{})
	if err != nil {
		f.Fatal(err)
	}
	b, _ := xpc.EncodeObject(r.Handshake())
	r.Close()
	f.Add(b)
	s := &Shim{services: map[string]net.Listener{}} // no listeners: only the rewrite runs
	f.Fuzz(func(t *testing.T, in []byte) {
		peertest.BoundAllocs(t, len(in), 256, func() {
			v, err := xpc.DecodeObject(in)
			if err != nil {
				return
			}
			dict, ok := v.(*xpc.Dict)
			if !ok {
				return
			}
			h, err := rsd.ParseHandshake(dict)
			if err != nil {
				return
			}
			out := s.rewriteHandshake(h)
			if len(out.Entries) != len(dict.Entries) {
				t.Fatalf("rewrite changed the top-level keys")
			}
			if h2, err := rsd.ParseHandshake(out); err != nil || h2.UUID != h.UUID || len(h2.Services) != len(h.Services) {
				t.Fatalf("rewritten handshake: %v", err)
			}
		})
	})
}
