package rsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// Port is the fixed RSD port on the device's untrusted USB link (rsd.md §1).
const Port = 58783

// HostMessagingProtocolVersion is what pmd3 and idevice send in the host Handshake (rsd.md §2).
const HostMessagingProtocolVersion = 7

// HostRemoteXPCVersionFlags is the RemoteXPCVersionFlags of the host Handshake (rsd.md §2).
const HostRemoteXPCVersionFlags = 0x0100000000000006

// Service is one entry of the handshake's Services dictionary.
type Service struct {
	Name          string
	Port          int
	Entitlement   string
	UsesRemoteXPC bool
	// ServiceVersion is the service's version, or -1 when the entry has none.
	ServiceVersion int64
	// Entry is the whole entry as sent, for faithful re-encoding.
	Entry *xpc.Dict
}

// Handshake is the device's RSD handshake with typed access to its parts.
type Handshake struct {
	// Raw is the whole dictionary in wire order and types.
	Raw        *xpc.Dict
	UUID       xpc.UUID
	Properties *xpc.Dict
	Services   []Service
}

// ErrNotHandshake means a dictionary is not a device Handshake.
var ErrNotHandshake = errors.New("rsd: not a Handshake message")

// ParseHandshake reads a device Handshake dictionary.
func ParseHandshake(d *xpc.Dict) (*Handshake, error) {
	if t, _ := d.String("MessageType"); t != "Handshake" {
		return nil, fmt.Errorf("%w: MessageType %q", ErrNotHandshake, t)
	}
	h := &Handshake{Raw: d}
	if _, ok := d.Integer("MessagingProtocolVersion"); !ok {
		return nil, fmt.Errorf("rsd: handshake: MessagingProtocolVersion missing or not an integer")
	}
	v, _ := d.Get("UUID")
	u, ok := v.(xpc.UUID)
	if !ok {
		return nil, fmt.Errorf("rsd: handshake: UUID missing or not a uuid")
	}
	h.UUID = u
	if h.Properties, ok = d.Dict("Properties"); !ok {
		return nil, fmt.Errorf("rsd: handshake: Properties missing")
	}
	services, ok := d.Dict("Services")
	if !ok {
		return nil, fmt.Errorf("rsd: handshake: Services missing")
	}
	for _, e := range services.Entries {
		entry, ok := e.Value.(*xpc.Dict)
		if !ok {
			return nil, fmt.Errorf("rsd: handshake: service %q is not a dictionary", e.Key)
		}
		ps, _ := entry.String("Port")
		port, err := strconv.Atoi(ps)
		if err != nil || port <= 0 || port > 65535 {
			return nil, fmt.Errorf("rsd: handshake: service %q: bad Port %q", e.Key, ps)
		}
		s := Service{Name: e.Key, Port: port, ServiceVersion: -1, Entry: entry}
		s.Entitlement, _ = entry.String("Entitlement")
		if p, ok := entry.Dict("Properties"); ok {
			s.UsesRemoteXPC, _ = p.Bool("UsesRemoteXPC")
			if v, ok := p.Integer("ServiceVersion"); ok {
				s.ServiceVersion = v
			}
		}
		h.Services = append(h.Services, s)
	}
	return h, nil
}

// UDID is Properties.UniqueDeviceID.
func (h *Handshake) UDID() string {
	s, _ := h.Properties.String("UniqueDeviceID")
	return s
}

// Property returns one entry of Properties.
func (h *Handshake) Property(key string) (xpc.Value, bool) { return h.Properties.Get(key) }

// Service finds a service by name.
func (h *Handshake) Service(name string) (Service, bool) {
	for _, s := range h.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// HostHandshake is the host Handshake pmd3 and idevice send before reading (rsd.md §2).
func HostHandshake(hostUUID xpc.UUID) *xpc.Dict {
	return xpc.NewDict(
		"MessageType", "Handshake",
		"MessagingProtocolVersion", uint64(HostMessagingProtocolVersion),
		"UUID", hostUUID,
		"Properties", xpc.NewDict(
			"RemoteXPCVersionFlags", uint64(HostRemoteXPCVersionFlags),
			"SensitivePropertiesVisible", true),
		"Services", &xpc.Dict{},
	)
}

// ServeHandshake sends the device Handshake on stream 1 once both channels are set up (the
// client has opened stream 3 and has its two stream-1 setup messages, remotexpc.md §7.2), then
// resets stream 1 with NO_ERROR when resetRoot is set, as the device does (rsd.md §2).
func ServeHandshake(ctx context.Context, c *Conn, handshake *xpc.Dict, resetRoot bool) error {
	select {
	case <-c.Ready():
	case <-c.Done():
		return fmt.Errorf("rsd: serve handshake: %w", c.Err())
	case <-ctx.Done():
		return fmt.Errorf("rsd: serve handshake: waiting for the client to open streams 1 and 3: %w", ctx.Err())
	}
	m := &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, Body: handshake}
	if err := c.Send(ctx, RootChannel, m); err != nil {
		return fmt.Errorf("rsd: serve handshake: %w", err)
	}
	if resetRoot {
		if err := c.ResetStream(RootChannel, http2.ErrCodeNo); err != nil {
			return fmt.Errorf("rsd: serve handshake: RST_STREAM: %w", err)
		}
	}
	return nil
}

// ReadHandshake waits for the device Handshake on c, skipping setup messages; when hostUUID is
// non-nil it first sends the host Handshake, as pmd3 does.
func ReadHandshake(ctx context.Context, c *Conn, hostUUID *xpc.UUID) (*Handshake, error) {
	if hostUUID != nil {
		m := &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: c.newID(), Body: HostHandshake(*hostUUID)}
		if err := c.Send(ctx, RootChannel, m); err != nil {
			return nil, fmt.Errorf("rsd: sending host handshake: %w", err)
		}
	}
	for {
		in, err := c.Receive(ctx)
		if err != nil {
			return nil, fmt.Errorf("rsd: waiting for the device handshake: %w", err)
		}
		d, ok := in.Msg.Body.(*xpc.Dict)
		if !ok || d.Len() == 0 {
			continue
		}
		return ParseHandshake(d)
	}
}

// DialClient connects to a RemoteXPC endpoint (an RSD port or a service) over TCP and runs
// the client setup.
func DialClient(ctx context.Context, addr string, opts Options) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rsd: dial %s: %w", addr, err)
	}
	return Client(ctx, nc, opts)
}

// Dial connects to an RSD endpoint and reads its handshake; the connection stays open.
func Dial(ctx context.Context, addr string, hostUUID *xpc.UUID) (*Conn, *Handshake, error) {
	c, err := DialClient(ctx, addr, Options{})
	if err != nil {
		return nil, nil, err
	}
	h, err := ReadHandshake(ctx, c, hostUUID)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, h, nil
}
