package sim

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// xpcHandler answers one RemoteXPC request body; a nil reply means "not supported" (an empty reply).
type xpcHandler func(d *Device, req *xpc.Dict) *xpc.Dict

// xpcServices are the RemoteXPC services the simulator implements.
var xpcServices = map[string]xpcHandler{
	"com.apple.coredevice.deviceinfo": deviceInfo,
}

// serveXPC runs a RemoteXPC service connection: setup, then one reply per request. Every
// end of the connection is logged with its cause.
func (d *Device) serveXPC(ctx context.Context, nc net.Conn, name string, h xpcHandler) {
	remote := nc.RemoteAddr().String()
	c, err := rsd.Server(ctx, nc, rsd.Options{})
	if err != nil {
		d.logDrop(name, remote, fmt.Errorf("setup: %w", err))
		return
	}
	defer c.Close()
	for {
		in, err := c.Receive(ctx)
		if err != nil {
			d.logDrop(name, remote, err)
			return
		}
		req, _ := in.Msg.Body.(*xpc.Dict)
		if !in.Msg.Flags.Has(xpc.FlagWantsReply) || req.Len() == 0 {
			continue
		}
		if err := c.Reply(ctx, in.Msg, h(d, req)); err != nil {
			d.logDrop(name, remote, fmt.Errorf("reply: %w", err))
			return
		}
	}
}

// deviceInfo answers CoreDevice requests of com.apple.coredevice.deviceinfo.
// The output shapes are the simulator's own: real replies are UNCONFIRMED here.
func deviceInfo(d *Device, req *xpc.Dict) *xpc.Dict {
	feature, _ := req.String("CoreDevice.featureIdentifier")
	inv, _ := req.String("CoreDevice.invocationIdentifier")
	var out xpc.Value
	switch {
	case strings.HasSuffix(feature, ".getdeviceinfo"):
		out = xpc.NewDict("deviceInfo", toXPC(d.RSDProperties()))
	case strings.HasSuffix(feature, ".getdisplayinfo"):
		out = xpc.NewDict("displayInfo", xpc.NewDict())
	default:
		return xpc.NewDict(
			"CoreDevice.invocationIdentifier", inv,
			"CoreDevice.error", xpc.NewDict(
				"domain", "com.apple.dt.CoreDeviceError", "code", int64(1),
				"userInfo", xpc.NewDict("NSLocalizedDescription", "feature not simulated: "+feature)))
	}
	return xpc.NewDict("CoreDevice.invocationIdentifier", inv, "CoreDevice.output", out)
}
