package pairing

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// Names of the RemoteXPC binding (pairing.md §2.1, §4.2).
const (
	// TunnelServiceName is the untrusted RSD service that carries the control channel.
	TunnelServiceName = "com.apple.internal.dt.coredevice.untrusted.tunnelservice"
	// EnvelopeTypeName is the envelope's mangledTypeName.
	EnvelopeTypeName = "RemotePairing.ControlChannelMessageEnvelope"
	// TunnelServiceVersion is the ServiceVersion the device announces first (RSD advertises 2).
	TunnelServiceVersion = 2
)

// XPCTransport is the RemoteXPC binding of the control channel over an rsd.Conn: each envelope
// is one message on the root channel, {mangledTypeName, value: Envelope}.
type XPCTransport struct {
	c *rsd.Conn
}

// NewXPCTransport wraps an established connection to (or from) the tunnel service.
func NewXPCTransport(c *rsd.Conn) *XPCTransport { return &XPCTransport{c: c} }

// SendServiceHello is the device's first message: {ServiceVersion: 2}.
func SendServiceHello(ctx context.Context, c *rsd.Conn) error {
	m := &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, Body: xpc.NewDict("ServiceVersion", int64(TunnelServiceVersion))}
	if err := c.Send(ctx, rsd.RootChannel, m); err != nil {
		return fmt.Errorf("pairing: tunnel service hello: %w", err)
	}
	return nil
}

// ReadServiceHello reads the device's first message and returns its ServiceVersion; the host
// must read it before sending anything.
func ReadServiceHello(ctx context.Context, c *rsd.Conn) (int64, error) {
	for {
		in, err := c.Receive(ctx)
		if err != nil {
			return 0, fmt.Errorf("pairing: waiting for the tunnel service hello: %w", err)
		}
		d, ok := in.Msg.Body.(*xpc.Dict)
		if !ok || d.Len() == 0 {
			continue
		}
		v, ok := d.Integer("ServiceVersion")
		if !ok {
			return 0, fmt.Errorf("%w: tunnel service hello has no ServiceVersion", ErrFrame)
		}
		return v, nil
	}
}

// EnvelopeToXPC builds the root dictionary of an envelope (keys sorted, as CoreDevice's encoder
// output in test-vectors.md §9.2; sequenceNumber uint64, wireProtocolVersion int64).
func EnvelopeToXPC(e Envelope) (*xpc.Dict, error) {
	msg, err := toXPC(e.Message, 0)
	if err != nil {
		return nil, err
	}
	value := xpc.NewDict("message", msg, "originatedBy", e.OriginatedBy, "sequenceNumber", e.SequenceNumber)
	return xpc.NewDict("mangledTypeName", EnvelopeTypeName, "value", value), nil
}

const maxObjDepth = 32

func toXPC(v any, depth int) (xpc.Value, error) {
	if depth > maxObjDepth {
		return nil, fmt.Errorf("%w: envelope nested deeper than %d", ErrFrame, maxObjDepth)
	}
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := &xpc.Dict{Entries: make([]xpc.Entry, 0, len(keys))}
		for _, k := range keys {
			x, err := toXPC(v[k], depth+1)
			if err != nil {
				return nil, err
			}
			d.Entries = append(d.Entries, xpc.Entry{Key: k, Value: x})
		}
		return d, nil
	case []any:
		a := make([]xpc.Value, len(v))
		for i := range v {
			x, err := toXPC(v[i], depth+1)
			if err != nil {
				return nil, err
			}
			a[i] = x
		}
		return a, nil
	case nil:
		return xpc.Null{}, nil
	case string, bool, []byte, int64, uint64, float64:
		return v, nil
	case int:
		return int64(v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		if u, ok := Uint(v); ok {
			return u, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("%w: number %s", ErrFrame, v)
		}
		return f, nil
	}
	return nil, fmt.Errorf("%w: no XPC form for %T", ErrFrame, v)
}

func fromXPC(v xpc.Value, depth int) (any, error) {
	if depth > maxObjDepth {
		return nil, fmt.Errorf("%w: envelope nested deeper than %d", ErrFrame, maxObjDepth)
	}
	switch v := v.(type) {
	case *xpc.Dict:
		if v == nil {
			return Obj{}, nil
		}
		o := make(Obj, len(v.Entries))
		for _, e := range v.Entries {
			x, err := fromXPC(e.Value, depth+1)
			if err != nil {
				return nil, err
			}
			o[e.Key] = x
		}
		return o, nil
	case []xpc.Value:
		a := make([]any, len(v))
		for i := range v {
			x, err := fromXPC(v[i], depth+1)
			if err != nil {
				return nil, err
			}
			a[i] = x
		}
		return a, nil
	case xpc.Null:
		return nil, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: non-finite number", ErrFrame)
		}
		return v, nil
	case string, bool, []byte, int64, uint64:
		return v, nil
	}
	return nil, fmt.Errorf("%w: unexpected XPC %T in the envelope", ErrFrame, v)
}

// EnvelopeFromXPC reads the envelope out of a root dictionary.
func EnvelopeFromXPC(d *xpc.Dict) (Envelope, error) {
	if name, _ := d.String("mangledTypeName"); name != EnvelopeTypeName {
		return Envelope{}, fmt.Errorf("%w: mangledTypeName %q", ErrFrame, name)
	}
	value, ok := d.Dict("value")
	if !ok {
		return Envelope{}, fmt.Errorf("%w: envelope has no value dictionary", ErrFrame)
	}
	mv, _ := value.Get("message")
	m, err := fromXPC(mv, 0)
	if err != nil {
		return Envelope{}, err
	}
	msg, ok := m.(Obj)
	if !ok {
		return Envelope{}, fmt.Errorf("%w: envelope message is %T", ErrFrame, mv)
	}
	origin, _ := value.String("originatedBy")
	seq, _ := value.Integer("sequenceNumber")
	return Envelope{Message: msg, OriginatedBy: origin, SequenceNumber: uint64(seq)}, nil
}

// Send posts one envelope on the root channel (flags ALWAYS_SET|DATA_PRESENT = 0x101).
func (x *XPCTransport) Send(ctx context.Context, e Envelope) error {
	d, err := EnvelopeToXPC(e)
	if err != nil {
		return err
	}
	return x.c.Send(ctx, rsd.RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: 1, Body: d})
}

// Recv returns the next envelope, skipping messages with no payload or an empty dictionary.
func (x *XPCTransport) Recv(ctx context.Context) (Envelope, error) {
	for {
		in, err := x.c.Receive(ctx)
		if err != nil {
			return Envelope{}, err
		}
		d, ok := in.Msg.Body.(*xpc.Dict)
		if !ok || d.Len() == 0 {
			continue
		}
		return EnvelopeFromXPC(d)
	}
}
