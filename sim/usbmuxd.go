package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/iosmux/iosmux/internal/accept"
	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
)

// Attached properties of a simulated USB iPhone (lockdown.md §2.4).
const (
	USBProductIDiPhone = 0x12a8    // Apple iPhone USB product id (discovery.md)
	usbConnectionSpeed = 480000000 // USB 2.0 high speed, bits/s, as libimobiledevice's usbmuxd reports
)

// How a device is attached: usbmuxd lists a phone that is also synced over Wi-Fi twice, with
// one UDID (macOS usbmuxd, usbmuxd2).
const (
	ConnectionTypeUSB     = "USB"
	ConnectionTypeNetwork = "Network"
)

// usbmuxd bounds.
const (
	muxIdle        = 5 * time.Minute // a usbmuxd connection with no request
	muxWrite       = 10 * time.Second
	muxEventQueue  = 256 // events buffered per Listen client; a client that falls behind is dropped
	errnoNoEnt     = 2   // libimobiledevice usbmuxd: missing pair record (lockdown.md §2.2)
	errnoInvalArgs = 22  // libimobiledevice usbmuxd: bad argument
)

// Fault makes the usbmuxd misbehave on a connection, for fault tests.
type Fault int

const (
	FaultNone Fault = iota
	// FaultGarbage answers the first request with bytes that are no usbmuxd message (a
	// header whose length is shorter than a header), then closes.
	FaultGarbage
	// FaultStall reads requests and never answers, until the client leaves or the usbmuxd closes.
	FaultStall
	// FaultClose closes the connection as soon as it is accepted.
	FaultClose
)

// UsbmuxdOptions tune a simulated usbmuxd.
type UsbmuxdOptions struct {
	// BUID is the ReadBUID answer; "" generates an upper-case UUID.
	BUID string
	// DashlessSerial reports SerialNumber without the UDID's dash, as Linux usbmuxd does for
	// some devices (lockdown.md §2.4).
	DashlessSerial bool
	Log            *slog.Logger
}

// Usbmuxd is a simulated usbmuxd: plugged devices, Listen events, Connect to lockdownd (62078)
// and to started services, and a pair record store, on Unix and/or TCP listeners. It speaks
// the plist protocol and answers binary (version 0) Listen and Connect.
type Usbmuxd struct {
	opts UsbmuxdOptions
	log  *slog.Logger
	acc  *accept.Group

	mu        sync.Mutex
	nextID    uint32
	devices   map[uint32]*muxDevice
	listeners map[*muxListener]struct{}
	records   map[string][]byte
	faults    []Fault
	addrs     []net.Addr
}

type muxDevice struct {
	id       uint32
	d        *Device
	via      string // ConnectionTypeUSB or ConnectionTypeNetwork
	location uint32
	conns    map[net.Conn]struct{}
	gone     bool
}

// NewUsbmuxd returns a usbmuxd with no devices and no listeners; it stops when ctx ends or
// Close is called.
func NewUsbmuxd(ctx context.Context, opts UsbmuxdOptions) *Usbmuxd {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.BUID == "" {
		opts.BUID = pairrecord.NewUUID()
	}
	return &Usbmuxd{
		opts:      opts,
		log:       log,
		acc:       accept.New(ctx, log),
		nextID:    1,
		devices:   map[uint32]*muxDevice{},
		listeners: map[*muxListener]struct{}{},
		records:   map[string][]byte{},
	}
}

// ErrSocketInUse means another process serves the Unix socket ListenUnix was given.
var ErrSocketInUse = errors.New("another process is serving this socket (a real usbmuxd?); stop it or pick another path")

// ListenUnix serves on a Unix socket at path, replacing a stale socket left there (one that
// nobody answers on) but never a live one; the socket file is removed by Close.
func (u *Usbmuxd) ListenUnix(path string) (net.Addr, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("sim: usbmuxd: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("sim: usbmuxd: %s: %w", path, ErrSocketInUse)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("sim: usbmuxd: %w", err)
	}
	u.Serve(ln)
	return ln.Addr(), nil
}

// ListenTCP serves on a TCP address ("127.0.0.1:0" picks a port).
func (u *Usbmuxd) ListenTCP(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sim: usbmuxd: %w", err)
	}
	u.Serve(ln)
	return ln.Addr(), nil
}

// Serve serves usbmuxd on ln until Close.
func (u *Usbmuxd) Serve(ln net.Listener) {
	u.mu.Lock()
	u.addrs = append(u.addrs, ln.Addr())
	u.mu.Unlock()
	u.acc.Serve("usbmuxd", ln, u.serveConn)
	u.log.Info("usbmuxd serving", "addr", ln.Addr().String())
}

// SocketAddress is the USBMUXD_SOCKET_ADDRESS value (libusbmuxd form) of the first listener:
// "UNIX:/path" or "HOST:PORT".
func (u *Usbmuxd) SocketAddress() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.addrs) == 0 {
		return ""
	}
	a := u.addrs[0]
	if a.Network() == "unix" {
		return "UNIX:" + a.String()
	}
	return a.String()
}

// BUID is the usbmuxd's SystemBUID (the ReadBUID answer).
func (u *Usbmuxd) BUID() string { return u.opts.BUID }

// Close stops every listener and connection and waits for them.
func (u *Usbmuxd) Close() { u.acc.Close() }

// Plug attaches d over USB and returns its DeviceID; Listen clients get an Attached event.
// Plugging a device that is already attached that way returns its current DeviceID.
func (u *Usbmuxd) Plug(d *Device) uint32 { return u.PlugVia(d, ConnectionTypeUSB) }

// PlugVia attaches d with a connection type (ConnectionTypeUSB or ConnectionTypeNetwork):
// a device plugged both ways is listed twice under one UDID, as usbmuxd lists a phone that is
// also synced over Wi-Fi. Binary-protocol Listen clients see only USB entries.
func (u *Usbmuxd) PlugVia(d *Device, via string) uint32 {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, md := range u.devices {
		if md.d == d && md.via == via {
			return md.id
		}
	}
	md := &muxDevice{id: u.nextID, d: d, via: via, location: 0x01100000 + u.nextID, conns: map[net.Conn]struct{}{}}
	u.nextID++
	u.devices[md.id] = md
	for l := range u.listeners {
		l.send(u.attachedMessage(l, md))
	}
	d.Log.Info("usbmuxd: plugged", "device_id", md.id, "via", via)
	return md.id
}

// Unplug detaches every entry of d: Listen clients get a Detached event per entry and every
// connection to the device (lockdownd, services) is closed. It reports whether d was attached.
func (u *Usbmuxd) Unplug(d *Device) bool {
	a := u.UnplugVia(d, ConnectionTypeUSB)
	b := u.UnplugVia(d, ConnectionTypeNetwork)
	return a || b
}

// UnplugVia detaches d's entry of one connection type and closes the connections made
// through it; it reports whether that entry was attached.
func (u *Usbmuxd) UnplugVia(d *Device, via string) bool {
	u.mu.Lock()
	var md *muxDevice
	for _, m := range u.devices {
		if m.d == d && m.via == via {
			md = m
		}
	}
	if md == nil {
		u.mu.Unlock()
		return false
	}
	delete(u.devices, md.id)
	md.gone = true
	for l := range u.listeners {
		if l.binary && md.via != ConnectionTypeUSB {
			continue
		}
		l.send(u.deviceEventMessage(l, lockdown.MsgDetached, md.id))
	}
	conns := md.conns
	md.conns = nil
	u.mu.Unlock()
	for nc := range conns {
		nc.Close()
	}
	d.Log.Info("usbmuxd: unplugged", "device_id", md.id, "via", via)
	return true
}

// DeviceID is d's current DeviceID over USB, if attached that way.
func (u *Usbmuxd) DeviceID(d *Device) (uint32, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, md := range u.devices {
		if md.d == d && md.via == ConnectionTypeUSB {
			return md.id, true
		}
	}
	return 0, false
}

// PairRecord returns the stored pair record plist for udid.
func (u *Usbmuxd) PairRecord(udid string) ([]byte, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b, ok := u.records[udid]
	return append([]byte(nil), b...), ok
}

// SetPairRecord stores a pair record plist for udid (nil deletes it), as SavePairRecord would.
func (u *Usbmuxd) SetPairRecord(udid string, data []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if data == nil {
		delete(u.records, udid)
		return
	}
	u.records[udid] = append([]byte(nil), data...)
}

// FailNext makes the next accepted connection misbehave as f says; calls queue up, one fault
// per connection.
func (u *Usbmuxd) FailNext(f Fault) {
	u.mu.Lock()
	u.faults = append(u.faults, f)
	u.mu.Unlock()
}

func (u *Usbmuxd) takeFault() Fault {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.faults) == 0 {
		return FaultNone
	}
	f := u.faults[0]
	u.faults = u.faults[1:]
	return f
}

// serial is the SerialNumber usbmuxd reports for d.
func (u *Usbmuxd) serial(d *Device) string {
	if u.opts.DashlessSerial {
		return strings.ReplaceAll(d.UDID, "-", "")
	}
	return d.UDID
}

func (u *Usbmuxd) attached(md *muxDevice) lockdown.DeviceAttached {
	if md.via == ConnectionTypeNetwork {
		// A Network entry has no USB properties (lockdown.md §2.4); its NetworkAddress is
		// left out: no client of the simulator connects by it.
		return lockdown.DeviceAttached{MessageType: lockdown.MsgAttached, DeviceID: md.id,
			Properties: lockdown.DeviceProperties{ConnectionType: ConnectionTypeNetwork, DeviceID: md.id,
				SerialNumber: u.serial(md.d)}}
	}
	return lockdown.DeviceAttached{
		MessageType: lockdown.MsgAttached,
		DeviceID:    md.id,
		Properties: lockdown.DeviceProperties{
			ConnectionSpeed: usbConnectionSpeed,
			ConnectionType:  "USB",
			DeviceID:        md.id,
			LocationID:      md.location,
			ProductID:       USBProductIDiPhone,
			SerialNumber:    u.serial(md.d),
		},
	}
}

// attachedMessage encodes an Attached event (tag 0) in l's protocol.
func (u *Usbmuxd) attachedMessage(l *muxListener, md *muxDevice) *lockdown.Message {
	if l.binary && md.via != ConnectionTypeUSB {
		return nil // the binary protocol has no connection type: USB only
	}
	if l.binary {
		rec, err := lockdown.DeviceRecord{DeviceID: md.id, ProductID: USBProductIDiPhone,
			SerialNumber: u.serial(md.d), Location: md.location}.MarshalBinary()
		if err != nil {
			return nil
		}
		return &lockdown.Message{Header: lockdown.Header{Version: lockdown.VersionBinary, Type: lockdown.TypeDeviceAdd}, Payload: rec}
	}
	m, _ := lockdown.NewPlistMessage(0, u.attached(md))
	return m
}

// deviceEventMessage encodes a Detached or Paired event (tag 0) in l's protocol.
func (u *Usbmuxd) deviceEventMessage(l *muxListener, kind string, id uint32) *lockdown.Message {
	if l.binary {
		t := lockdown.TypeDeviceRemove
		if kind == lockdown.MsgPaired {
			t = lockdown.TypeDevicePaired
		}
		return &lockdown.Message{Header: lockdown.Header{Version: lockdown.VersionBinary, Type: t}, Payload: lockdown.EncodeDeviceID(id)}
	}
	m, _ := lockdown.NewPlistMessage(0, lockdown.DeviceEvent{MessageType: kind, DeviceID: id})
	return m
}

// muxListener is a connection that sent Listen.
type muxListener struct {
	binary bool
	ch     chan *lockdown.Message
	dead   chan struct{}
	once   sync.Once
}

// send queues an event; a listener whose queue is full is dropped. Called with u.mu held.
func (l *muxListener) send(m *lockdown.Message) {
	if m == nil {
		return
	}
	select {
	case l.ch <- m:
	default:
		l.once.Do(func() { close(l.dead) })
	}
}

func (u *Usbmuxd) serveConn(ctx context.Context, nc net.Conn) {
	switch u.takeFault() {
	case FaultClose:
		return
	case FaultGarbage:
		nc.SetReadDeadline(time.Now().Add(muxIdle))
		lockdown.ReadMessage(nc, 0)
		nc.SetWriteDeadline(time.Now().Add(muxWrite))
		nc.Write([]byte{3, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef})
		return
	case FaultStall:
		io.Copy(io.Discard, nc) // until the client leaves or Close closes nc
		return
	}
	for ctx.Err() == nil {
		nc.SetReadDeadline(time.Now().Add(muxIdle))
		msg, err := lockdown.ReadMessage(nc, 0)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				u.log.Debug("usbmuxd: reading request", "err", err)
			}
			return
		}
		nc.SetReadDeadline(time.Time{})
		var handedOver bool
		switch msg.Version {
		case lockdown.VersionPlist:
			handedOver, err = u.handlePlist(ctx, nc, msg)
		case lockdown.VersionBinary:
			handedOver, err = u.handleBinary(ctx, nc, msg)
		default:
			err = u.writeResult(nc, false, msg.Tag, lockdown.ResultBadVersion)
		}
		if err != nil {
			u.log.Debug("usbmuxd: request failed", "err", err)
			return
		}
		if handedOver {
			return
		}
	}
}

func (u *Usbmuxd) write(nc net.Conn, m *lockdown.Message) error {
	nc.SetWriteDeadline(time.Now().Add(muxWrite))
	return lockdown.WriteMessage(nc, m)
}

func (u *Usbmuxd) writePlist(nc net.Conn, tag uint32, v any) error {
	m, err := lockdown.NewPlistMessage(tag, v)
	if err != nil {
		return err
	}
	return u.write(nc, m)
}

func (u *Usbmuxd) writeResult(nc net.Conn, plistProto bool, tag uint32, code lockdown.ResultCode) error {
	if plistProto {
		return u.writePlist(nc, tag, lockdown.Result{MessageType: lockdown.MsgResult, Number: int(code)})
	}
	return u.write(nc, &lockdown.Message{
		Header:  lockdown.Header{Version: lockdown.VersionBinary, Type: lockdown.TypeResult, Tag: tag},
		Payload: lockdown.EncodeResult(code),
	})
}

// uintOf reads a plist integer of any width.
func uintOf(v any) (uint64, bool) {
	switch t := v.(type) {
	case uint64:
		return t, true
	case int64:
		return uint64(t), t >= 0
	}
	return 0, false
}

// handlePlist answers one plist request; handedOver means the connection was used up (Listen,
// or Connect turned it into a pipe) and is finished.
func (u *Usbmuxd) handlePlist(ctx context.Context, nc net.Conn, msg *lockdown.Message) (bool, error) {
	if msg.Type != lockdown.TypePlist {
		return false, u.writeResult(nc, true, msg.Tag, lockdown.ResultBadCommand)
	}
	var req map[string]any
	if err := msg.DecodePlist(&req); err != nil || req == nil {
		return false, u.writeResult(nc, true, msg.Tag, lockdown.ResultBadCommand)
	}
	mt, _ := req["MessageType"].(string)
	result := func(n int) error {
		return u.writePlist(nc, msg.Tag, lockdown.Result{MessageType: lockdown.MsgResult, Number: n})
	}
	switch mt {
	case lockdown.MsgListDevices:
		u.mu.Lock()
		list := lockdown.DeviceList{DeviceList: []lockdown.DeviceAttached{}}
		for id := uint32(1); id < u.nextID; id++ {
			if md, ok := u.devices[id]; ok {
				list.DeviceList = append(list.DeviceList, u.attached(md))
			}
		}
		u.mu.Unlock()
		return false, u.writePlist(nc, msg.Tag, list)
	case lockdown.MsgListen:
		return true, u.listen(ctx, nc, msg.Tag, false)
	case lockdown.MsgConnect:
		id, _ := uintOf(req["DeviceID"])
		wire, _ := uintOf(req["PortNumber"])
		return u.connect(ctx, nc, true, msg.Tag, uint32(id), lockdown.PortFromWire(uint16(wire)))
	case lockdown.MsgReadBUID:
		return false, u.writePlist(nc, msg.Tag, lockdown.BUIDReply{BUID: u.opts.BUID})
	case lockdown.MsgReadPairRecord:
		id, _ := req["PairRecordID"].(string)
		data, ok := u.PairRecord(id)
		if !ok {
			return false, result(errnoNoEnt)
		}
		return false, u.writePlist(nc, msg.Tag, lockdown.PairRecordReply{PairRecordData: data})
	case lockdown.MsgSavePairRecord:
		id, _ := req["PairRecordID"].(string)
		data, _ := req["PairRecordData"].([]byte)
		xml, ok := normalizeRecord(data)
		if id == "" || !ok {
			return false, result(errnoInvalArgs)
		}
		u.mu.Lock()
		u.records[id] = xml
		if devID, ok := uintOf(req["DeviceID"]); ok {
			if md, ok := u.devices[uint32(devID)]; ok {
				for l := range u.listeners {
					l.send(u.deviceEventMessage(l, lockdown.MsgPaired, md.id))
				}
			}
		}
		u.mu.Unlock()
		return false, result(0)
	case lockdown.MsgDeletePairRecord:
		id, _ := req["PairRecordID"].(string)
		u.mu.Lock()
		_, ok := u.records[id]
		delete(u.records, id)
		u.mu.Unlock()
		if !ok {
			return false, result(errnoNoEnt)
		}
		return false, result(0)
	}
	return false, result(int(lockdown.ResultBadCommand))
}

// normalizeRecord re-encodes a saved pair record as XML, as libimobiledevice's usbmuxd does
// (pair-records.md §2.1), keeping every key; ok is false if it is no plist dictionary.
func normalizeRecord(data []byte) ([]byte, bool) {
	rec, err := pairrecord.Parse(data)
	if err != nil {
		return nil, false
	}
	xml, err := rec.Marshal()
	if err != nil {
		return nil, false
	}
	return xml, true
}

// handleBinary answers a version-0 request: Listen and Connect; anything else is BADCOMMAND.
func (u *Usbmuxd) handleBinary(ctx context.Context, nc net.Conn, msg *lockdown.Message) (bool, error) {
	switch msg.Type {
	case lockdown.TypeListen:
		return true, u.listen(ctx, nc, msg.Tag, true)
	case lockdown.TypeConnect:
		c, err := lockdown.DecodeConnect(msg.Payload)
		if err != nil {
			return false, u.writeResult(nc, false, msg.Tag, lockdown.ResultBadCommand)
		}
		return u.connect(ctx, nc, false, msg.Tag, c.DeviceID, c.Port)
	}
	return false, u.writeResult(nc, false, msg.Tag, lockdown.ResultBadCommand)
}

// listen turns nc into an event stream: the Result, an Attached per present device, then live
// events, until the client leaves, falls behind, or the usbmuxd closes.
func (u *Usbmuxd) listen(ctx context.Context, nc net.Conn, tag uint32, binary bool) error {
	l := &muxListener{binary: binary, ch: make(chan *lockdown.Message, muxEventQueue), dead: make(chan struct{})}
	var res *lockdown.Message
	if binary {
		res = &lockdown.Message{Header: lockdown.Header{Version: lockdown.VersionBinary, Type: lockdown.TypeResult, Tag: tag},
			Payload: lockdown.EncodeResult(lockdown.ResultOK)}
	} else {
		res, _ = lockdown.NewPlistMessage(tag, lockdown.Result{MessageType: lockdown.MsgResult, Number: 0})
	}
	u.mu.Lock()
	l.send(res)
	for id := uint32(1); id < u.nextID; id++ {
		if md, ok := u.devices[id]; ok {
			l.send(u.attachedMessage(l, md))
		}
	}
	u.listeners[l] = struct{}{}
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.listeners, l)
		u.mu.Unlock()
	}()

	// The client sends nothing more; reading tells when it leaves.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		nc.SetReadDeadline(time.Time{})
		io.Copy(io.Discard, nc)
	}()
	defer func() {
		nc.Close()
		<-gone
	}()
	for {
		select {
		case m := <-l.ch:
			if err := u.write(nc, m); err != nil {
				return nil
			}
		case <-l.dead:
			u.log.Debug("usbmuxd: dropping a Listen client that fell behind")
			return nil
		case <-gone:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// connect handles Connect: port 62078 reaches lockdownd, a started service's port reaches that
// service, anything else is refused. On success the connection becomes the pipe and is
// served here until it ends.
func (u *Usbmuxd) connect(ctx context.Context, nc net.Conn, plistProto bool, tag, id uint32, port uint16) (bool, error) {
	u.mu.Lock()
	md, ok := u.devices[id]
	u.mu.Unlock()
	if !ok {
		return false, u.writeResult(nc, plistProto, tag, lockdown.ResultBadDevice)
	}
	var serve func()
	if port == lockdown.LockdownPort {
		serve = func() { md.d.serveUSBLockdown(ctx, nc) }
	} else if s, ok := md.d.lockdownd().takeService(port); ok {
		serve = func() { md.d.serveStartedService(ctx, nc, s) }
	} else {
		return false, u.writeResult(nc, plistProto, tag, lockdown.ResultConnRefused)
	}
	u.mu.Lock()
	if md.gone {
		u.mu.Unlock()
		return false, u.writeResult(nc, plistProto, tag, lockdown.ResultBadDevice)
	}
	md.conns[nc] = struct{}{}
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		if md.conns != nil {
			delete(md.conns, nc)
		}
		u.mu.Unlock()
	}()
	if err := u.writeResult(nc, plistProto, tag, lockdown.ResultOK); err != nil {
		return true, err
	}
	nc.SetDeadline(time.Time{})
	serve()
	return true, nil
}
