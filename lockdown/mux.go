package lockdown

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/iosmux/iosmux/pairrecord"
)

// LockdownPort is lockdownd's device port (lockdown.md §4).
const LockdownPort = 62078

// Mux is a usbmuxd client (lockdown.md §1–2), plist protocol. Every call opens its own
// connection to usbmuxd, as libusbmuxd does; a Mux is safe for concurrent use.
type Mux struct {
	Network string // "unix" or "tcp"
	Address string
	// Client identifies iosmux in requests (ClientVersionString, ProgName).
	Client ClientInfo
	// Timeout bounds each call whose context has no deadline (default DefaultTimeout).
	Timeout time.Duration
	// Dialer dials usbmuxd; nil uses a net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}
}

// NewMux returns a client for the usbmuxd at addr, in any form ParseSocketAddress accepts;
// "" means $USBMUXD_SOCKET_ADDRESS, else the platform default.
func NewMux(addr string) (*Mux, error) {
	network, address, err := ParseSocketAddress(addr)
	if err != nil {
		return nil, err
	}
	return &Mux{Network: network, Address: address, Client: DefaultClient}, nil
}

func (m *Mux) String() string { return m.Network + ":" + m.Address }

func (m *Mux) timeout() time.Duration {
	if m.Timeout > 0 {
		return m.Timeout
	}
	return DefaultTimeout
}

// Device is a device usbmuxd knows (a ListDevices entry or an Attached event).
type Device struct {
	ID             uint32 // usbmuxd DeviceID; changes on every re-plug
	UDID           string // Properties.SerialNumber (possibly without the dash, lockdown.md §2.4)
	ConnectionType string // "USB" or "Network"
	Properties     DeviceProperties
}

func deviceFrom(a DeviceAttached) Device {
	id := a.DeviceID
	if id == 0 {
		id = a.Properties.DeviceID
	}
	ct := a.Properties.ConnectionType
	if ct == "" {
		ct = "USB"
	}
	return Device{ID: id, UDID: a.Properties.SerialNumber, ConnectionType: ct, Properties: a.Properties}
}

// dial opens a connection to usbmuxd.
func (m *Mux) dial(ctx context.Context, op string) (net.Conn, error) {
	var d interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	} = &net.Dialer{}
	if m.Dialer != nil {
		d = m.Dialer
	}
	dctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	nc, err := d.DialContext(dctx, m.Network, m.Address)
	if err != nil {
		return nil, fmt.Errorf("lockdown: usbmuxd %s: %w", op, ctxErr(ctx, err))
	}
	return nc, nil
}

// muxReply holds every field a usbmuxd plist reply may carry.
type muxReply struct {
	MessageType    string
	Number         int
	DeviceList     []DeviceAttached
	PairRecordData []byte
	BUID           string
}

// exchange sends req with tag on nc and reads the reply with the same tag.
func exchange(nc net.Conn, tag uint32, req Request, reply *muxReply) error {
	msg, err := NewPlistMessage(tag, req)
	if err != nil {
		return err
	}
	if err := WriteMessage(nc, msg); err != nil {
		return err
	}
	for {
		in, err := ReadMessage(nc, MaxMessageSize)
		if err != nil {
			return err
		}
		if in.Tag != tag {
			continue // an event or a stale reply
		}
		if in.Version == VersionBinary && in.Type == TypeResult {
			code, err := DecodeResult(in.Payload)
			if err != nil {
				return err
			}
			*reply = muxReply{MessageType: MsgResult, Number: int(code)}
			return nil
		}
		if err := in.DecodePlist(reply); err != nil {
			return fmt.Errorf("%w: reply: %v", ErrProtocol, err)
		}
		return nil
	}
}

// call runs one request on a fresh connection and returns the decoded reply; a Result with a
// non-zero Number becomes a *MuxError.
func (m *Mux) call(ctx context.Context, req Request) (*muxReply, error) {
	nc, err := m.dial(ctx, req.MessageType)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	release := bindDeadline(ctx, nc, m.timeout())
	defer release()
	var reply muxReply
	if err := exchange(nc, 1, req, &reply); err != nil {
		return nil, fmt.Errorf("lockdown: usbmuxd %s: %w", req.MessageType, ctxErr(ctx, err))
	}
	if reply.MessageType == MsgResult && reply.Number != 0 {
		return nil, &MuxError{Request: req.MessageType, Number: reply.Number}
	}
	return &reply, nil
}

func (m *Mux) request(t string) Request { return NewRequest(m.Client, t) }

// ListDevices returns the devices usbmuxd has now.
func (m *Mux) ListDevices(ctx context.Context) ([]Device, error) {
	reply, err := m.call(ctx, m.request(MsgListDevices))
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(reply.DeviceList))
	for _, a := range reply.DeviceList {
		out = append(out, deviceFrom(a))
	}
	return out, nil
}

// Connect opens a byte pipe to port on the device (lockdown.md §2.4 Connect). A refused port
// gives an error matching ErrConnRefused, an unknown device ErrBadDevice.
func (m *Mux) Connect(ctx context.Context, deviceID uint32, port uint16) (net.Conn, error) {
	req := NewConnectRequest(m.Client, deviceID, port)
	stage := fmt.Sprintf("lockdown: usbmuxd Connect device %d port %d", deviceID, port)
	nc, err := m.dial(ctx, MsgConnect)
	if err != nil {
		return nil, err
	}
	release := bindDeadline(ctx, nc, m.timeout())
	var reply muxReply
	err = exchange(nc, 1, req, &reply)
	release()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", stage, ctxErr(ctx, err))
	}
	if reply.MessageType != MsgResult {
		nc.Close()
		return nil, fmt.Errorf("%s: %w: reply %q, want Result", stage, ErrProtocol, reply.MessageType)
	}
	if reply.Number != 0 {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", stage, &MuxError{Request: MsgConnect, Number: reply.Number})
	}
	return nc, nil
}

// ReadPairRecordData returns the raw PairRecordData plist of the device's pair record; a
// missing record gives an error matching pairrecord.ErrNotFound.
func (m *Mux) ReadPairRecordData(ctx context.Context, udid string) ([]byte, error) {
	req := m.request(MsgReadPairRecord)
	req.PairRecordID = udid
	reply, err := m.call(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(reply.PairRecordData) == 0 {
		return nil, fmt.Errorf("lockdown: usbmuxd ReadPairRecord %s: %w", udid, pairrecord.ErrNotFound)
	}
	return reply.PairRecordData, nil
}

// ReadPairRecord reads and parses the device's pair record.
func (m *Mux) ReadPairRecord(ctx context.Context, udid string) (*pairrecord.Record, error) {
	data, err := m.ReadPairRecordData(ctx, udid)
	if err != nil {
		return nil, err
	}
	rec, err := pairrecord.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("lockdown: usbmuxd ReadPairRecord %s: %w", udid, err)
	}
	return rec, nil
}

// SavePairRecord stores rec for the device in usbmuxd (deviceID may be 0 if unknown).
func (m *Mux) SavePairRecord(ctx context.Context, udid string, deviceID uint32, rec *pairrecord.Record) error {
	data, err := rec.Marshal()
	if err != nil {
		return fmt.Errorf("lockdown: usbmuxd SavePairRecord: %w", err)
	}
	req := m.request(MsgSavePairRecord)
	req.PairRecordID = udid
	req.PairRecordData = data
	req.DeviceID = deviceID
	_, err = m.call(ctx, req)
	return err
}

// DeletePairRecord removes the device's pair record from usbmuxd.
func (m *Mux) DeletePairRecord(ctx context.Context, udid string) error {
	req := m.request(MsgDeletePairRecord)
	req.PairRecordID = udid
	_, err := m.call(ctx, req)
	return err
}

// ReadBUID returns usbmuxd's SystemBUID.
func (m *Mux) ReadBUID(ctx context.Context) (string, error) {
	reply, err := m.call(ctx, m.request(MsgReadBUID))
	if err != nil {
		return "", err
	}
	if reply.BUID == "" {
		return "", fmt.Errorf("lockdown: usbmuxd ReadBUID: %w: no BUID in reply", ErrProtocol)
	}
	return reply.BUID, nil
}

// Event is a Listen notification.
type Event struct {
	Type   string // MsgAttached, MsgDetached or MsgPaired
	Device Device // Detached and Paired carry only Device.ID
}

// Listener delivers usbmuxd device events; see Mux.Listen.
type Listener struct {
	events   chan Event
	done     chan struct{} // closed by Close
	finished chan struct{} // closed once err is set
	once     sync.Once
	nc       net.Conn
	err      error
}

// Listen subscribes to device events. It returns once usbmuxd has accepted the Listen
// request; usbmuxd then sends an Attached event for every device already present, and live
// events after that. Events is closed when ctx ends, Close is called or usbmuxd goes away;
// Err then says why.
func (m *Mux) Listen(ctx context.Context) (*Listener, error) {
	nc, err := m.dial(ctx, MsgListen)
	if err != nil {
		return nil, err
	}
	release := bindDeadline(ctx, nc, m.timeout())
	var reply muxReply
	err = exchange(nc, 1, m.request(MsgListen), &reply)
	release()
	if err == nil && (reply.MessageType != MsgResult || reply.Number != 0) {
		if reply.MessageType == MsgResult {
			err = &MuxError{Request: MsgListen, Number: reply.Number}
		} else {
			err = fmt.Errorf("%w: reply %q, want Result", ErrProtocol, reply.MessageType)
		}
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("lockdown: usbmuxd Listen: %w", ctxErr(ctx, err))
	}
	l := &Listener{events: make(chan Event), done: make(chan struct{}), finished: make(chan struct{}), nc: nc}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	go func() {
		defer close(l.events)
		defer stop()
		defer nc.Close()
		l.err = l.run(ctx)
		close(l.finished)
	}()
	return l, nil
}

func (l *Listener) run(ctx context.Context) error {
	for {
		msg, err := ReadMessage(l.nc, MaxMessageSize)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select {
			case <-l.done:
				return net.ErrClosed
			default:
			}
			return fmt.Errorf("lockdown: usbmuxd Listen: %w", err)
		}
		ev, ok, err := decodeEvent(msg)
		if err != nil {
			return fmt.Errorf("lockdown: usbmuxd Listen: %w", err)
		}
		if !ok {
			continue
		}
		select {
		case l.events <- ev:
		case <-l.done:
			return net.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// decodeEvent turns an event message (plist, or binary DEVICE_ADD/REMOVE/PAIRED) into an Event;
// ok is false for messages that are not events.
func decodeEvent(msg *Message) (Event, bool, error) {
	switch {
	case msg.Version == VersionPlist && msg.Type == TypePlist:
		var a DeviceAttached
		if err := msg.DecodePlist(&a); err != nil {
			return Event{}, false, fmt.Errorf("%w: event: %v", ErrProtocol, err)
		}
		switch a.MessageType {
		case MsgAttached:
			return Event{Type: MsgAttached, Device: deviceFrom(a)}, true, nil
		case MsgDetached, MsgPaired:
			return Event{Type: a.MessageType, Device: Device{ID: a.DeviceID}}, true, nil
		}
		return Event{}, false, nil
	case msg.Type == TypeDeviceAdd:
		r, err := DecodeDeviceRecord(msg.Payload)
		if err != nil {
			return Event{}, false, err
		}
		return Event{Type: MsgAttached, Device: Device{ID: r.DeviceID, UDID: r.SerialNumber, ConnectionType: "USB",
			Properties: DeviceProperties{DeviceID: r.DeviceID, ProductID: uint32(r.ProductID), LocationID: r.Location,
				SerialNumber: r.SerialNumber, ConnectionType: "USB"}}}, true, nil
	case msg.Type == TypeDeviceRemove || msg.Type == TypeDevicePaired:
		id, err := DecodeDeviceID(msg.Payload)
		if err != nil {
			return Event{}, false, err
		}
		t := MsgDetached
		if msg.Type == TypeDevicePaired {
			t = MsgPaired
		}
		return Event{Type: t, Device: Device{ID: id}}, true, nil
	}
	return Event{}, false, nil
}

// Events is the event stream; it is closed when listening ends.
func (l *Listener) Events() <-chan Event { return l.events }

// Err is why listening ended; valid once Events is closed.
func (l *Listener) Err() error {
	select {
	case <-l.finished:
		return l.err
	default:
		return nil
	}
}

// Close stops listening and waits until Events is closed.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	l.nc.Close()
	for range l.events {
	}
	return nil
}

// WaitAttached waits on l for an Attached event whose UDID is udid (either dash form).
func (l *Listener) WaitAttached(ctx context.Context, udid string) (Device, error) {
	for {
		select {
		case ev, ok := <-l.Events():
			if !ok {
				return Device{}, fmt.Errorf("lockdown: usbmuxd Listen ended before %s attached: %w", udid, l.Err())
			}
			if ev.Type == MsgAttached && SameUDID(ev.Device.UDID, udid) {
				return ev.Device, nil
			}
		case <-ctx.Done():
			return Device{}, fmt.Errorf("lockdown: waiting for %s: %w", udid, ctx.Err())
		}
	}
}

// SameUDID compares UDIDs ignoring case and the dash Linux usbmuxd may drop (lockdown.md §2.4).
func SameUDID(a, b string) bool {
	norm := func(s string) string {
		out := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '-' {
				continue
			}
			if c >= 'a' && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
		}
		return string(out)
	}
	return norm(a) == norm(b)
}

// FindDevice returns the device with udid from ListDevices, preferring USB over Network.
func (m *Mux) FindDevice(ctx context.Context, udid string) (Device, error) {
	devs, err := m.ListDevices(ctx)
	if err != nil {
		return Device{}, err
	}
	var found *Device
	for i := range devs {
		if SameUDID(devs[i].UDID, udid) {
			if found == nil || (found.ConnectionType != "USB" && devs[i].ConnectionType == "USB") {
				found = &devs[i]
			}
		}
	}
	if found == nil {
		return Device{}, fmt.Errorf("lockdown: usbmuxd: device %s: %w", udid, ErrBadDevice)
	}
	return *found, nil
}

var _ pairrecord.UsbmuxdReader = (*Mux)(nil)
