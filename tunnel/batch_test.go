package tunnel

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/internal/peertest"
)

// queueTUN is a tun.Device for tests. Read hands over every packet queued so far (up to the
// batch), blocking only for the first, like a kernel TUN with GSO or a busy stack; Write
// records a copy of each packet in order (or, with count set, only counts them).
type queueTUN struct {
	mtu    int
	out    chan []byte // what the device sends, for Read
	in     chan []byte // what Write got
	count  bool
	got    atomic.Uint64 // packets Write got
	events chan tun.Event
	closed chan struct{}
	once   sync.Once
}

func newQueueTUN(mtu, queue int, count bool) *queueTUN {
	return &queueTUN{mtu: mtu, out: make(chan []byte, queue), in: make(chan []byte, queue), count: count,
		events: make(chan tun.Event), closed: make(chan struct{})}
}

func (q *queueTUN) File() *os.File           { return nil }
func (q *queueTUN) MTU() (int, error)        { return q.mtu, nil }
func (q *queueTUN) Name() (string, error)    { return "queue", nil }
func (q *queueTUN) Events() <-chan tun.Event { return q.events }
func (q *queueTUN) BatchSize() int           { return 64 }

func (q *queueTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-q.out:
	case <-q.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-q.out:
		default:
			return n, nil
		}
	}
}

func (q *queueTUN) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-q.closed:
		return 0, os.ErrClosed
	default:
	}
	for _, b := range bufs {
		q.got.Add(1)
		if !q.count {
			q.in <- append([]byte(nil), b[offset:]...)
		}
	}
	return len(bufs), nil
}

func (q *queueTUN) Close() error {
	q.once.Do(func() { close(q.closed); close(q.events) })
	return nil
}

// seqPacket is an IPv6 packet of exactly size bytes (no next header) whose source address and
// payload carry seq, so that any reordering, merging or splitting shows.
func seqPacket(size int, seq uint32) []byte {
	p := make([]byte, size)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(size-IPv6HeaderLen))
	p[6] = 59
	p[7] = 64
	binary.BigEndian.PutUint32(p[8:], seq)
	for i := IPv6HeaderLen; i < size; i++ {
		p[i] = byte(seq) ^ byte(i)
	}
	return p
}

// tlsPair wraps a loopback TCP pair in TLS at version ver. smallRecords leaves Go's dynamic
// record sizing on, so the first records carry ~1.2 KiB and split packets everywhere.
func tlsPair(t testing.TB, ver uint16, smallRecords bool) (net.Conn, net.Conn) {
	t.Helper()
	hc, dc := tcpPair(t)
	return tlsOver(t, hc, dc, ver, smallRecords)
}

// tlsPairCorked is tlsPair with a cork.Conn under each TLS end, as iosmuxd and the simulator
// run CoreDeviceProxy: the pumps hold each batch's records and send them in one write.
func tlsPairCorked(t testing.TB, ver uint16) (net.Conn, net.Conn) {
	t.Helper()
	hc, dc := tcpPair(t)
	return tlsOver(t, cork.New(hc), cork.New(dc), ver, false)
}

func tlsOver(t testing.TB, hc, dc net.Conn, ver uint16, smallRecords bool) (net.Conn, net.Conn) {
	t.Helper()
	cert := peertest.SelfSignedCert(t)
	srv := tls.Server(dc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: ver, MaxVersion: ver,
		DynamicRecordSizingDisabled: !smallRecords})
	cli := tls.Client(hc, &tls.Config{InsecureSkipVerify: true, MinVersion: ver, MaxVersion: ver,
		DynamicRecordSizingDisabled: !smallRecords})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cli, srv
}

// TestBatchingKeepsPacketBoundaries sends one packet of every size from 40 bytes to the MTU
// (the daemon's 8192; 1500 with -short) both ways at once between two pumps over TCP and TLS
// transports — TLS records splitting packets everywhere — with the far side coalescing its
// writes or writing one packet per write (the simulator's option), and checks that each
// device gets exactly the packets sent, in order.
func TestBatchingKeepsPacketBoundaries(t *testing.T) {
	mtu := CoreDeviceProxyDropAbove
	if testing.Short() {
		mtu = 1500
	}
	var pkts [][]byte
	for size := IPv6HeaderLen; size <= mtu; size++ {
		pkts = append(pkts, seqPacket(size, uint32(size)))
	}
	transports := []struct {
		name string
		pair func(t testing.TB) (net.Conn, net.Conn)
	}{
		{"tcp", tcpPair},
		{"tls1.2", func(t testing.TB) (net.Conn, net.Conn) { return tlsPair(t, tls.VersionTLS12, false) }},
		{"tls1.3", func(t testing.TB) (net.Conn, net.Conn) { return tlsPair(t, tls.VersionTLS13, false) }},
		{"tls1.3-small-records", func(t testing.TB) (net.Conn, net.Conn) { return tlsPair(t, tls.VersionTLS13, true) }},
		{"tls1.2-corked", func(t testing.TB) (net.Conn, net.Conn) { return tlsPairCorked(t, tls.VersionTLS12) }},
		{"tls1.3-corked", func(t testing.TB) (net.Conn, net.Conn) { return tlsPairCorked(t, tls.VersionTLS13) }},
	}
	for _, tr := range transports {
		for _, one := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/far-side-one-packet-per-write=%v", tr.name, one), func(t *testing.T) {
				hc, dc := tr.pair(t)
				hostDev, farDev := newQueueTUN(mtu, len(pkts), false), newQueueTUN(mtu, len(pkts), false)
				host := New(hc, hostDev, nil, Options{})
				far := New(dc, farDev, nil, Options{OnePacketPerWrite: one})
				defer host.Close()
				defer far.Close()
				for _, p := range pkts {
					hostDev.out <- p
					farDev.out <- p
				}
				for _, c := range []struct {
					name string
					dev  *queueTUN
				}{{"host→far", farDev}, {"far→host", hostDev}} {
					for i, want := range pkts {
						select {
						case got := <-c.dev.in:
							if !bytes.Equal(got, want) {
								t.Fatalf("%s: packet %d: got %d bytes (seq %d), want %d bytes", c.name, i, len(got),
									binary.BigEndian.Uint32(got[8:]), len(want))
							}
						case <-time.After(failAfter):
							t.Fatalf("%s: packet %d (%d bytes) never arrived; tunnels: %v / %v", c.name, i, len(want), host.Err(), far.Err())
						}
					}
				}
				// Counters are final once both pumps have stopped: a packet can reach the far
				// device before the host has counted its write.
				host.Close()
				far.Close()
				st := host.Stats()
				if st.Sent.Packets != uint64(len(pkts)) || st.Received.Packets != uint64(len(pkts)) || st.Sent.Dropped+st.Received.Dropped != 0 {
					t.Fatalf("host counters %+v", st)
				}
			})
		}
	}
}

// socketWrites counts the writes that reach a socket.
type socketWrites struct {
	net.Conn
	n atomic.Int64
}

func (s *socketWrites) Write(p []byte) (int, error) { s.n.Add(1); return s.Conn.Write(p) }

// gvisorAllocsPerPacket is the most gVisor allocates for one injected packet: a view and a
// packet buffer when their pools miss.
const gvisorAllocsPerPacket = 2

// countReads counts a socket's reads into n.
type countReads struct {
	net.Conn
	n *atomic.Int64
}

func (c *countReads) Read(p []byte) (int, error) { c.n.Add(1); return c.Conn.Read(p) }

// TestHeldRecords: over TLS on a cork.Conn (how iosmuxd and the simulator run CoreDeviceProxy),
// a coalescing pump sends a batch's records in one socket write, while a pump writing one
// packet per write still gives every packet its own record and its own socket write, so the
// peer's reads end at packet boundaries (tunnel.md §6).
func TestHeldRecords(t *testing.T) {
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, one := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/one-packet-per-write=%v", tls.VersionName(ver), one), func(t *testing.T) {
				hc, dc := tcpPair(t)
				sock := &socketWrites{Conn: hc}
				host, peer := tlsOver(t, cork.New(sock), dc, ver, false)
				const n = 32
				dev := newQueueTUN(1500, n, false)
				var want [][]byte
				for i := range n {
					p := seqPacket(IPv6HeaderLen+100+37*i, uint32(i))
					want = append(want, p)
					dev.out <- p // all queued before the pump starts: its first device Read gets them all
				}
				before := sock.n.Load()
				tn := New(host, dev, nil, Options{OnePacketPerWrite: one})
				defer tn.Close()
				all := bytes.Join(want, nil)
				got := make([]byte, 0, len(all))
				buf := make([]byte, 64<<10)
				for i := 0; len(got) < len(all); i++ {
					peer.SetReadDeadline(time.Now().Add(failAfter))
					k, err := peer.Read(buf)
					if err != nil {
						t.Fatalf("after %d of %d bytes: %v", len(got), len(all), err)
					}
					if one && !bytes.Equal(buf[:k], want[i]) {
						t.Fatalf("read %d: %d bytes, want packet %d's %d: a record holds other than one packet", i, k, i, len(want[i]))
					}
					got = append(got, buf[:k]...)
				}
				if !bytes.Equal(got, all) {
					t.Fatal("the packets arrived altered")
				}
				wantWrites := int64(1)
				if one {
					wantWrites = n
				}
				if w := sock.n.Load() - before; w != wantWrites {
					t.Fatalf("%d socket writes for one batch of %d packets, want %d", w, n, wantWrites)
				}
			})
		}
	}
}

// TestPacketIOAllocs: nothing on the per-packet path allocates — the stream reader (directly and
// through the read-ahead), both writers, the whole pump in both directions, and the userspace
// device's copy out of gVisor.
func TestPacketIOAllocs(t *testing.T) {
	p := echoRequest(addrA, addrB, 1, 1400)
	buf := make([]byte, 2000)
	t.Run("reader", func(t *testing.T) {
		pr := NewPacketReader(&repeatReader{p: p}, 0)
		if a := testing.AllocsPerRun(1000, func() {
			if _, err := pr.ReadPacket(buf); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Fatalf("%v allocations per packet", a)
		}
	})
	t.Run("read-ahead", func(t *testing.T) {
		if raceEnabled {
			t.Skip("sync.Pool drops items at random under the race detector")
		}
		a, b := tcpPair(t)
		go func() {
			s := bytes.Repeat(p, 64)
			for {
				if _, err := a.Write(s); err != nil {
					return
				}
			}
		}()
		ra := newReadAhead(b)
		defer func() { a.Close(); b.Close(); ra.wait() }()
		pr := NewPacketReader(ra, 16<<10)
		pr.ReadPacket(buf) // warm the chunk pool
		if n := testing.AllocsPerRun(2000, func() {
			if _, err := pr.ReadPacket(buf); err != nil {
				t.Fatal(err)
			}
		}); n > 0.01 {
			t.Fatalf("%v allocations per packet", n)
		}
	})
	t.Run("writers", func(t *testing.T) {
		pkts := [][]byte{p, p, p, p, p, p, p, p}
		for name, w := range map[string]*PacketWriter{"one per write": NewPacketWriter(discard{}), "coalescing": NewCoalescingWriter(discard{}, 0)} {
			w.WritePackets(pkts)
			if a := testing.AllocsPerRun(1000, func() { w.WritePackets(pkts) }); a != 0 {
				t.Errorf("%s: %v allocations per batch", name, a)
			}
			if a := testing.AllocsPerRun(1000, func() { w.WritePacket(p) }); a != 0 {
				t.Errorf("%s: %v allocations per WritePacket", name, a)
			}
		}
	})
	// crypto/tls allocates once per socket read (an atLeastReader in Conn.readFromUntil), so over
	// TLS the socket reads are counted and allowed: nothing more.
	var sockReads atomic.Int64
	for _, tr := range []struct {
		name string
		pair func(t testing.TB) (net.Conn, net.Conn)
		one  bool
	}{
		{"pump", tcpPair, false},
		{"pump over corked TLS", func(t testing.TB) (net.Conn, net.Conn) {
			hc, dc := tcpPair(t)
			return tlsOver(t, cork.New(&countReads{hc, &sockReads}), cork.New(&countReads{dc, &sockReads}), tls.VersionTLS13, false)
		}, false},
		{"pump over corked TLS, one packet per write", func(t testing.TB) (net.Conn, net.Conn) {
			hc, dc := tcpPair(t)
			return tlsOver(t, cork.New(&countReads{hc, &sockReads}), cork.New(&countReads{dc, &sockReads}), tls.VersionTLS13, false)
		}, true},
	} {
		t.Run(tr.name, func(t *testing.T) {
			if raceEnabled {
				t.Skip("sync.Pool drops items at random under the race detector")
			}
			const n = 20000
			hc, dc := tr.pair(t)
			hostDev, farDev := newQueueTUN(1500, n, true), newQueueTUN(1500, n, true)
			host := New(hc, hostDev, nil, Options{OnePacketPerWrite: tr.one})
			far := New(dc, farDev, nil, Options{OnePacketPerWrite: tr.one})
			defer host.Close()
			defer far.Close()
			run := func(k int) {
				h0, f0 := hostDev.got.Load(), farDev.got.Load()
				for range k {
					hostDev.out <- p
					farDev.out <- p
				}
				eventually(t, func() bool { return hostDev.got.Load() == h0+uint64(k) && farDev.got.Load() == f0+uint64(k) })
			}
			run(1000) // warm up: pools, buffers, goroutine stacks
			var before, after runtime.MemStats
			r0 := sockReads.Load()
			runtime.ReadMemStats(&before)
			run(n)
			runtime.ReadMemStats(&after)
			reads := uint64(sockReads.Load() - r0)
			// 2n packets moved; a handful of allocations from the runtime and the test's own
			// polling are tolerated, one per 100 packets is not.
			if allocs := after.Mallocs - before.Mallocs; allocs > 2*n/100+reads {
				t.Fatalf("%d allocations for %d packets (%d socket reads under TLS)", allocs, 2*n, reads)
			}
		})
	}
	t.Run("pump into gVisor", func(t *testing.T) {
		if raceEnabled {
			t.Skip("sync.Pool drops items at random under the race detector")
		}
		const n = 20000
		a, b := tcpPair(t)
		dev, err := NewUserspace(addrB, 1500)
		if err != nil {
			t.Fatal(err)
		}
		tn := New(b, dev, nil, Options{})
		defer tn.Close()
		// Packets for another address: the stack drops them, so only the path into it counts.
		q := echoRequest(addrA, netip.MustParseAddr("fd00:1::9"), 1, 1000)
		s := bytes.Repeat(q, 100)
		run := func(k int) {
			r0 := tn.Stats().Received.Packets
			for range k / 100 {
				if _, err := a.Write(s); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, func() bool { return tn.Stats().Received.Packets == r0+uint64(k) })
		}
		run(1000)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		run(n)
		runtime.ReadMemStats(&after)
		// gVisor allocates per packet on its own: its view and packet buffer come from sync.Pools,
		// which miss at random (0–2 allocations per packet measured for bare device Writes, 2 for
		// the pump's inject, in every run), so the bound is gVisor's two: anything the pump adds
		// per packet goes over it.
		pump := float64(after.Mallocs-before.Mallocs) / n
		in := [][]byte{append(make([]byte, deviceOffset), q...)}
		own := testing.AllocsPerRun(1000, func() { dev.Write(in, deviceOffset) })
		if pump > max(own, gvisorAllocsPerPacket)+0.01 {
			t.Fatalf("%.2f allocations per packet through the pump, %.2f in gVisor itself", pump, own)
		}
	})
	t.Run("gvisor copy out", func(t *testing.T) {
		dev, err := NewUserspace(addrB, 1500)
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close()
		// An echo request to the stack's address comes back as a reply through Read.
		req := echoRequest(addrA, addrB, 1, 1000)
		bufs := [][]byte{make([]byte, 16+1500)}
		sizes := []int{0}
		in := [][]byte{append(make([]byte, 16), req...)}
		dev.Write(in, 16)
		if _, err := dev.Read(bufs, sizes, 16); err != nil {
			t.Fatal(err)
		}
		g := dev.Device.(*gvisorTUN)
		dev.Write(in, 16)
		pkt := g.ep.ReadContext(g.ctx)
		defer pkt.DecRef()
		if a := testing.AllocsPerRun(1000, func() { copyPacket(bufs[0][16:], pkt) }); a != 0 {
			t.Fatalf("%v allocations per packet copied out of gVisor", a)
		}
		if n := copyPacket(bufs[0][16:], pkt); n != len(req) || CheckPacket(bufs[0][16:16+n]) != nil {
			t.Fatalf("copied %d bytes, want a %d-byte packet", n, len(req))
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkReceivePath measures the transport → device direction alone: a TLS 1.3 stream of
// MTU-sized packets (what a device sends) read, split and written in batches to a device that
// only counts them, against a plain read of the same stream. Both include the sender's
// encryption; "pump-extra-cpu-s/GB" is what the pump costs beyond the plain read, per GB.
func BenchmarkReceivePath(b *testing.B) {
	const mtu = CoreDeviceProxyDropAbove
	pkt := seqPacket(mtu, 1)
	batch := bytes.Repeat(pkt, 8) // 64 KiB of packets per write
	measure := func(n int, consume func(c net.Conn, total int64)) float64 {
		hc, dc := tlsPair(b, tls.VersionTLS13, false)
		defer hc.Close()
		defer dc.Close()
		total := int64(n) * int64(len(batch))
		go func() {
			for range n {
				if _, err := dc.Write(batch); err != nil {
					return
				}
			}
		}()
		c0 := peertest.ProcessCPU(b)
		consume(hc, total)
		return (peertest.ProcessCPU(b) - c0).Seconds() / (float64(total) / 1e9)
	}
	plain := func(c net.Conn, total int64) { io.CopyN(io.Discard, c, total) }
	pump := func(c net.Conn, total int64) {
		dev := newQueueTUN(mtu, 1, true)
		tn := New(c, dev, nil, Options{})
		defer tn.Close()
		for want := uint64(total) / uint64(len(pkt)); dev.got.Load() < want; {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.SetBytes(int64(len(batch)))
	var base, with float64
	for range 3 { // interleaved, so drift in the machine's load hits both
		base += measure(b.N, plain)
		with += measure(b.N, pump)
	}
	b.ReportMetric(base/3, "plain-cpu-s/GB")
	b.ReportMetric(with/3, "pump-cpu-s/GB")
	b.ReportMetric((with-base)/3, "pump-extra-cpu-s/GB")
}
