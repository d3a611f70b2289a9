package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/iosmux/iosmux/internal/cork"
)

// CoreDeviceProxyDropAbove is the packet size above which USB CoreDeviceProxy silently drops
// host→device packets even with MTU 16000 granted (measured by pymobiledevice3, tunnel.md §6;
// UNCONFIRMED for other paths and iOS versions, and Frida describes a deferral, not a drop).
// Hosts clamp their MTU to it on path D (Options.MTUClamp); the simulator can reproduce it
// (Options.DropReceivedAbove).
const CoreDeviceProxyDropAbove = 8192

// deviceOffset is the headroom left before each packet in device buffers: the Linux TUN with
// offloads needs room for a virtio-net header on Write (wireguard-go leaves 16 as well).
const deviceOffset = 16

// deviceCloseGrace bounds how long the teardown waits for the receive side to finish its last
// device Write before closing the device under it.
const deviceCloseGrace = 2 * time.Second

// ErrClosed is a Tunnel's Err after Close.
var ErrClosed = errors.New("tunnel: closed")

// Options tune a Tunnel.
type Options struct {
	// Backend makes the host's device (Start only); nil means Userspace{}.
	Backend Backend
	// RequestMTU is the MTU asked for in the handshake (Start only); 0 means DefaultRequestMTU.
	RequestMTU int
	// MTUClamp, when > 0, caps the device's MTU below the granted one (Start only); set it to
	// CoreDeviceProxyDropAbove on lockdown CoreDeviceProxy tunnels.
	MTUClamp int
	// DropReceivedAbove, when > 0, drops packets read from the transport that are longer than
	// this many bytes (counted in Stats.Received.Dropped). The simulator's device side uses it
	// with CoreDeviceProxyDropAbove to behave like a real USB device.
	DropReceivedAbove int
	// DropAll, when set and true, drops every packet read from the transport (counted in
	// Stats.Received.Dropped): the simulator's blackhole, a link that stays up while nothing
	// gets through.
	DropAll *atomic.Bool
	// OnePacketPerWrite gives every packet sent to the peer its own transport Write (and so its
	// own TLS record), as pymobiledevice3 does because it measured USB CoreDeviceProxy on
	// iOS 26.5 to be read-boundary-sensitive; Frida coalesces on the same path (tunnel.md §6).
	// Which is right is UNCONFIRMED. The default coalesces: packets the device hands over
	// together leave in as few Writes as DefaultWriteCoalesce allows, since the stream is
	// delimited by the IPv6 headers, not by records. The simulator sets it to deliver one
	// packet per read, keeping the host's reader honest.
	OnePacketPerWrite bool
	// Handshake, when set, is where Start runs the CDTunnel handshake instead of the transport
	// (QUIC's first bidirectional stream, tunnel.md §4).
	Handshake io.ReadWriter
	// Datagrams says the transport carries one packet per Read and per Write (QUIC DATAGRAM
	// frames) instead of a byte stream: reads that are not exactly one IPv6 packet are dropped
	// (counted in Stats.Received.Dropped), every packet gets its own Write, and a Write error
	// wrapping ErrPacketDropped costs that packet only (counted in Stats.Sent.Dropped).
	Datagrams bool
	// Log receives the tunnel's lifecycle; nil discards.
	Log *slog.Logger
}

// Counters count one direction of a tunnel.
type Counters struct {
	Packets, Bytes uint64
	// Dropped counts packets not forwarded: not IPv6, malformed, too large, or over a limit.
	Dropped uint64
}

// Stats is a snapshot of a tunnel's counters. Sent is device → transport (on the host: toward
// the iPhone), Received is transport → device.
type Stats struct {
	Sent, Received Counters
}

type counters struct{ packets, bytes, dropped atomic.Uint64 }

func (c *counters) snapshot() Counters {
	return Counters{Packets: c.packets.Load(), Bytes: c.bytes.Load(), Dropped: c.dropped.Load()}
}

// Tunnel pumps IPv6 packets between a transport stream and a tun.Device, one goroutine per
// direction so neither direction ever waits for the other. It owns both: Close, or the end of
// either, tears both down.
type Tunnel struct {
	conn   net.Conn
	dev    tun.Device
	params *Params
	mtu    int
	log    *slog.Logger
	drop   int
	all    *atomic.Bool // Options.DropAll
	one    bool         // Options.OnePacketPerWrite
	dgram  bool         // Options.Datagrams

	sent, recv counters

	stopOnce sync.Once
	stopping chan struct{}
	err      error // set once, before stopping closes
	recvDone chan struct{}
	sendDone chan struct{}
	done     chan struct{}
}

// Start runs the client side of the CDTunnel handshake on conn (normally the TLS connection to
// CoreDeviceProxy or the TLS-PSK tunnel listener; opts.Handshake instead when set), makes the
// device with opts.Backend and starts the pump. ctx bounds the handshake only; the tunnel then
// runs until Close or until the transport or the device fails. conn belongs to the Tunnel (and
// is closed if Start fails).
// A half-open transport is not detected here: liveness (TCP keepalive on a network transport,
// usbmuxd closing the socket on unplug, RSD checks) belongs to whoever made conn.
func Start(ctx context.Context, conn net.Conn, opts Options) (*Tunnel, error) {
	req := opts.RequestMTU
	if req <= 0 {
		req = DefaultRequestMTU
	}
	var hs io.ReadWriter = conn
	if opts.Handshake != nil {
		hs = opts.Handshake
	}
	p, err := ClientHandshake(ctx, hs, req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	mtu := p.MTU
	if opts.MTUClamp > 0 && mtu > opts.MTUClamp {
		mtu = max(opts.MTUClamp, MinMTU)
	}
	b := opts.Backend
	if b == nil {
		b = Userspace{}
	}
	dev, err := b.Create(p, mtu)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return New(conn, dev, p, opts), nil
}

// New starts pumping packets between conn, on which the CDTunnel handshake is done, and dev.
// p is the handshake's result (nil when unknown); the device side in package sim passes what
// it granted.
func New(conn net.Conn, dev tun.Device, p *Params, opts Options) *Tunnel {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mtu, err := dev.MTU()
	if err != nil || mtu <= 0 {
		// A kernel TUN is asked by name, in the caller's network namespace; when that fails
		// the granted MTU is the best guess (too small a guess would make GSO reads overrun
		// the send buffers).
		mtu = MinMTU
		if p != nil && p.MTU > mtu {
			mtu = p.MTU
		}
	}
	t := &Tunnel{
		conn: conn, dev: dev, params: p, mtu: mtu, log: log, drop: opts.DropReceivedAbove, all: opts.DropAll, one: opts.OnePacketPerWrite, dgram: opts.Datagrams,
		stopping: make(chan struct{}),
		recvDone: make(chan struct{}),
		sendDone: make(chan struct{}),
		done:     make(chan struct{}),
	}
	// Packets from the peer may be as large as the MTU it was granted, even if ours is clamped.
	maxRecv := mtu
	if p != nil && p.MTU > maxRecv {
		maxRecv = p.MTU
	}
	go t.receive(maxRecv)
	go t.send()
	go t.teardown()
	log.Debug("tunnel up", "mtu", mtu, "device", t.Interface())
	return t
}

// stop records why the tunnel ends (first caller wins) and starts the teardown.
func (t *Tunnel) stop(err error) {
	t.stopOnce.Do(func() {
		t.err = err
		close(t.stopping)
	})
}

func (t *Tunnel) stopped() bool {
	select {
	case <-t.stopping:
		return true
	default:
		return false
	}
}

// teardown closes the transport first (unblocking both directions' transport I/O), then the
// device once nothing writes to it any more; the send direction keeps reading the device until
// it is closed, so nothing the device still emits blocks on the way out.
func (t *Tunnel) teardown() {
	<-t.stopping
	t.conn.Close()
	grace := time.NewTimer(deviceCloseGrace)
	select {
	case <-t.recvDone:
	case <-grace.C: // a device Write that never returns; closing the device ends it
	}
	grace.Stop()
	if err := t.dev.Close(); err != nil {
		t.log.Debug("closing tunnel device", "err", err)
	}
	<-t.recvDone
	<-t.sendDone
	st := t.Stats()
	t.log.Info("tunnel down", "reason", t.err,
		"sent_packets", st.Sent.Packets, "sent_bytes", st.Sent.Bytes, "sent_dropped", st.Sent.Dropped,
		"received_packets", st.Received.Packets, "received_bytes", st.Received.Bytes, "received_dropped", st.Received.Dropped)
	close(t.done)
}

// recvBatchLen is how many packets one device Write carries at most: those the transport has
// already delivered, so a batch never waits for more.
const recvBatchLen = 16

// groSlot is a receive buffer's size on a kernel TUN with offloads: wireguard's GRO coalesces a
// flow's segments into the first one's buffer, up to 64 KiB.
const groSlot = deviceOffset + MaxPacketLen

// recvBatch holds the packets of one device Write.
type recvBatch struct {
	slots [][]byte // full-size buffers
	bufs  [][]byte // the packets, as slots[i][:deviceOffset+len]
}

// receive moves packets from the transport into the device, in batches of those already
// read from the transport. Batch buffers come from a pool and are held only while packets
// flow: an idle tunnel keeps none.
func (t *Tunnel) receive(maxPacket int) {
	defer close(t.recvDone)
	var src io.Reader = t.conn
	if t.dgram {
		src = &datagramReader{r: t.conn, dropped: &t.recv.dropped}
	}
	ra := newReadAhead(src)
	defer ra.wait()              // the transport is closed by then (teardown closes it first)
	pr := NewPacketReader(ra, 0) // reads the read-ahead's chunks in place
	slot := deviceOffset + maxPacket
	if t.dev.File() != nil { // a kernel TUN, possibly with GRO
		slot = max(slot, groSlot)
	}
	pool := sync.Pool{New: func() any {
		b := &recvBatch{slots: make([][]byte, recvBatchLen), bufs: make([][]byte, 0, recvBatchLen)}
		for i := range b.slots {
			b.slots[i] = make([]byte, slot)
		}
		return b
	}}
	var gv *gvisorTUN
	if g, ok := t.dev.(gvisorDevice); ok {
		gv = g.gvisor()
	}
	for {
		var err error
		if gv != nil {
			err = t.receiveGvisor(pr, gv, maxPacket)
		} else if err = pr.Wait(); err == nil {
			b := pool.Get().(*recvBatch)
			err = t.fill(pr, b, maxPacket)
			if len(b.bufs) > 0 {
				t.deliver(b.bufs)
			}
			b.bufs = b.bufs[:0]
			pool.Put(b)
		}
		if err != nil {
			if t.stopped() {
				return
			}
			if errors.Is(err, ErrNotIPv6) || errors.Is(err, os.ErrClosed) { // already say where
				t.stop(err)
			} else {
				t.stop(fmt.Errorf("tunnel: transport: %w", err))
			}
			return
		}
	}
}

// receiveGvisor moves the next packet into a userspace stack, reading it from the stream
// straight into the stack's own buffer.
func (t *Tunnel) receiveGvisor(pr *PacketReader, g *gvisorTUN, maxPacket int) error {
	n, err := pr.Next()
	if err != nil {
		return err
	}
	if n > maxPacket || (t.drop > 0 && n > t.drop) || t.dropAll() {
		if _, err := pr.ReadPacket(nil); err != nil {
			var tl *TooLargeError
			if !errors.As(err, &tl) {
				return err
			}
		}
		t.recv.dropped.Add(1)
		return nil
	}
	if err := g.inject(pr, n); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return fmt.Errorf("tunnel: device: write: %w", err)
		}
		return err
	}
	t.recv.packets.Add(1)
	t.recv.bytes.Add(uint64(n))
	return nil
}

// dropAll reports whether Options.DropAll drops everything now.
func (t *Tunnel) dropAll() bool { return t.all != nil && t.all.Load() }

// fill reads into b the next packet and then those already buffered, skipping (and counting)
// packets over the limits.
func (t *Tunnel) fill(pr *PacketReader, b *recvBatch, maxPacket int) error {
	for i := 0; i < len(b.slots); {
		n, err := pr.ReadPacket(b.slots[i][deviceOffset : deviceOffset+maxPacket])
		switch {
		case err != nil:
			var tl *TooLargeError // declared here: errors.As makes it escape, so it costs an allocation
			if !errors.As(err, &tl) {
				return err
			}
			t.recv.dropped.Add(1)
			t.log.Debug("dropping oversized packet from the transport", "len", tl.Len, "max", tl.Max)
		case t.drop > 0 && n > t.drop, t.dropAll():
			t.recv.dropped.Add(1)
		default:
			b.bufs = append(b.bufs, b.slots[i][:deviceOffset+n])
			i++
		}
		if !pr.Buffered() {
			return nil
		}
	}
	return nil
}

// deliver writes one batch to the device and counts it.
func (t *Tunnel) deliver(bufs [][]byte) {
	var bytes uint64
	for _, b := range bufs {
		bytes += uint64(len(b) - deviceOffset) // before the device's GRO merges buffers
	}
	_, err := t.dev.Write(bufs, deviceOffset)
	if err == nil {
		t.recv.packets.Add(uint64(len(bufs)))
		t.recv.bytes.Add(bytes)
		return
	}
	if t.stopped() {
		return
	}
	if errors.Is(err, os.ErrClosed) {
		t.stop(fmt.Errorf("tunnel: device: write: %w", err))
		return
	}
	// A packet the device refuses (the kernel may reject a malformed one) costs that packet,
	// not the tunnel. A batch's errors come joined, one per refused packet.
	refused := 1
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		refused = min(max(len(j.Unwrap()), 1), len(bufs))
	}
	t.recv.dropped.Add(uint64(refused))
	t.recv.packets.Add(uint64(len(bufs) - refused))
	t.log.Debug("device refused packets", "refused", refused, "of", len(bufs), "err", err)
}

// send moves packets from the device to the transport: the packets of one device Read leave
// together (see Options.OnePacketPerWrite). After the tunnel stops it keeps reading (and
// discarding) until the device is closed: the teardown closes the device only after the
// receive side has finished, so nothing else blocks on it meanwhile.
func (t *Tunnel) send() {
	defer close(t.sendDone)
	nb := t.dev.BatchSize()
	if nb < 1 {
		nb = 1
	}
	// A kernel TUN with offloads splits one GSO read into up to ~64 KiB of MTU-sized packets;
	// more buffers than that are never filled.
	if lim := 2*MaxPacketLen/t.mtu + 2; nb > lim {
		nb = lim
	}
	// Other devices (the gVisor stack) batch whole packets: 64 KiB of them is enough to fill a
	// coalesced write, and keeps an idle tunnel small.
	if lim := max(DefaultWriteCoalesce/t.mtu, 1); t.dev.File() == nil && nb > lim {
		nb = lim
	}
	bufs := make([][]byte, nb)
	for i := range bufs {
		bufs[i] = make([]byte, deviceOffset+t.mtu)
	}
	sizes := make([]int, nb)
	pkts := make([][]byte, 0, nb)
	pw := NewCoalescingWriter(t.conn, 0)
	if t.one {
		pw = NewPacketWriter(t.conn)
	}
	dw := &datagramWriter{w: t.conn, dropped: &t.sent.dropped}
	hold := cork.Of(t.conn)
	for {
		n, err := t.dev.Read(bufs, sizes, deviceOffset)
		pkts = pkts[:0]
		var bytes uint64
		for i := 0; i < n && !t.stopped(); i++ {
			p := bufs[i][deviceOffset : deviceOffset+sizes[i]]
			// Only IPv6 goes to the device (tunnel.md §6, §8).
			if CheckPacket(p) != nil {
				t.sent.dropped.Add(1)
				continue
			}
			pkts = append(pkts, p)
			bytes += uint64(len(p))
		}
		if len(pkts) > 0 && t.dgram {
			n, b, werr := dw.WritePackets(pkts)
			t.sent.packets.Add(uint64(n))
			t.sent.bytes.Add(b)
			if werr != nil {
				t.stop(fmt.Errorf("tunnel: transport: %w", werr))
			}
		} else if len(pkts) > 0 {
			if werr := t.writeBatch(pw, hold, pkts, bytes); werr != nil {
				t.stop(fmt.Errorf("tunnel: transport: %w", werr))
			} else {
				t.sent.packets.Add(uint64(len(pkts)))
				t.sent.bytes.Add(bytes)
			}
		}
		if err != nil {
			if errors.Is(err, tun.ErrTooManySegments) {
				t.sent.dropped.Add(1)
				continue
			}
			// A userspace stack fails Read only once closed; a kernel TUN that fails is
			// broken. Either way this direction is over.
			t.stop(fmt.Errorf("tunnel: device: read: %w", err))
			return
		}
	}
}

// writeBatch writes one device read's packets to the transport. A coalescing pump whose
// transport's records can be held (TLS over a cork.Conn) sends the batch's records in one
// write(2) instead of one per 16 KiB record. With OnePacketPerWrite nothing is held: each
// packet keeps its own record and its own socket write, the rule that pymobiledevice3 measured
// USB CoreDeviceProxy to need (tunnel.md §6).
func (t *Tunnel) writeBatch(pw *PacketWriter, hold cork.Holder, pkts [][]byte, bytes uint64) error {
	if hold == nil || t.one || bytes <= tlsRecord {
		return pw.WritePackets(pkts)
	}
	hold.Hold()
	err := pw.WritePackets(pkts)
	if ferr := hold.Flush(); err == nil {
		err = ferr
	}
	return err
}

// tlsRecord is the most plaintext one TLS record carries.
const tlsRecord = 16 << 10

// Close ends the tunnel and waits until the transport and the device are closed.
func (t *Tunnel) Close() error {
	t.stop(ErrClosed)
	<-t.done
	return nil
}

// Done is closed when the tunnel has ended and its transport and device are closed.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Err says why the tunnel ended: ErrClosed after Close, an error wrapping io.EOF (or the
// transport's error) when the peer went away. It is nil while the tunnel runs.
func (t *Tunnel) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Stats returns the counters so far.
func (t *Tunnel) Stats() Stats {
	return Stats{Sent: t.sent.snapshot(), Received: t.recv.snapshot()}
}

// Bytes is (sent, received): on the host (to the device, from the device).
func (t *Tunnel) Bytes() (sent, received uint64) {
	return t.sent.bytes.Load(), t.recv.bytes.Load()
}

// Params is the handshake's result (nil when New was given none).
func (t *Tunnel) Params() *Params { return t.params }

// Device is the tunnel's device (*UserspaceDevice, *KernelDevice, or what New was given).
func (t *Tunnel) Device() tun.Device { return t.dev }

// MTU is the device's MTU (the granted MTU, or the clamp).
func (t *Tunnel) MTU() int { return t.mtu }

// ServerAddress is the device's address inside the tunnel (zero without Params).
func (t *Tunnel) ServerAddress() netip.Addr {
	if t.params == nil {
		return netip.Addr{}
	}
	return t.params.ServerAddress
}

// RSDPort is the device's trusted RSD port inside the tunnel (0 without Params).
func (t *Tunnel) RSDPort() int {
	if t.params == nil {
		return 0
	}
	return int(t.params.ServerRSDPort)
}

// Interface names the kernel TUN, or "" for a userspace stack.
func (t *Tunnel) Interface() string {
	if k, ok := t.dev.(interface{ InterfaceName() string }); ok {
		return k.InterfaceName()
	}
	return ""
}

// DialContext connects to an address inside the tunnel: through the userspace stack, or
// with the host's stack for a kernel TUN.
func (t *Tunnel) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d, ok := t.dev.(Dialer); ok {
		return d.DialContext(ctx, network, address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// Dial is DialContext (the name the daemon's Tunnel interface uses).
func (t *Tunnel) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return t.DialContext(ctx, network, address)
}
