package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failAfter is a failure bound, not a timing assertion: generous, so only a hang trips it.
const failAfter = 30 * time.Second

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	return a, r.c
}

// pair is a host Tunnel (made by Start) and a device-side Tunnel over a userspace stack,
// back to back over loopback TCP: the device side is what package sim does, minus RSD.
type pair struct {
	host, dev *Tunnel
	devStack  *UserspaceDevice
	params    *Params
}

// deviceSide runs the device's half: handshake, own stack at the server address, pump.
func deviceSide(ctx context.Context, conn net.Conn, limit int, opts Options) (*Tunnel, *UserspaceDevice, error) {
	p, err := ServerHandshake(ctx, conn, func(mtu int) (*Params, error) {
		return RandomParams(max(min(mtu, limit), MinMTU), 62078), nil
	})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	stack, err := NewUserspace(p.ServerAddress, p.MTU)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return New(conn, stack, p, opts), stack, nil
}

func newPair(t testing.TB, hostOpts, devOpts Options) *pair {
	t.Helper()
	hc, dc := tcpPair(t)
	p, err := startPair(hc, dc, hostOpts, devOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.host.Close()
		p.dev.Close()
	})
	return p
}

// startPair runs the device side on dc and Start on hc; on failure both are closed.
func startPair(hc, dc net.Conn, hostOpts, devOpts Options) (*pair, error) {
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	type res struct {
		t   *Tunnel
		s   *UserspaceDevice
		err error
	}
	ch := make(chan res, 1)
	go func() {
		dt, s, err := deviceSide(ctx, dc, 16000, devOpts)
		ch <- res{dt, s, err}
	}()
	ht, err := Start(ctx, hc, hostOpts)
	d := <-ch
	if err != nil || d.err != nil {
		if ht != nil {
			ht.Close()
		}
		if d.t != nil {
			d.t.Close()
		}
		return nil, fmt.Errorf("host: %v; device: %v", err, d.err)
	}
	return &pair{host: ht, dev: d.t, devStack: d.s, params: ht.Params()}, nil
}

// listenDevice accepts one TCP connection on the device's stack.
func (p *pair) listenDevice(t testing.TB, port uint16) <-chan net.Conn {
	t.Helper()
	ln, err := p.devStack.Net.ListenTCPAddrPort(netip.AddrPortFrom(p.params.ServerAddress, port))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// connect opens a TCP connection host → device through the tunnel.
func (p *pair) connect(t testing.TB) (host, dev net.Conn) {
	t.Helper()
	acc := p.listenDevice(t, 7)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	hc, err := p.host.DialContext(ctx, "tcp", netip.AddrPortFrom(p.params.ServerAddress, 7).String())
	if err != nil {
		t.Fatal(err)
	}
	dc, ok := <-acc
	if !ok {
		hc.Close()
		t.Fatal("device accept failed")
	}
	t.Cleanup(func() { hc.Close(); dc.Close() })
	hc.SetDeadline(time.Now().Add(failAfter))
	dc.SetDeadline(time.Now().Add(failAfter))
	return hc, dc
}

// transfer sends n random bytes from w to r and checks they arrive intact.
func transfer(w, r net.Conn, n int) error {
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		errc <- err
	}()
	h := sha256.New()
	if _, err := io.CopyN(h, r, int64(n)); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return errors.New("data corrupted in transit")
	}
	return nil
}

func TestUserspaceTCPBothWays(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	if p.host.MTU() != 16000 || p.host.Interface() != "" || p.host.RSDPort() != 62078 || p.host.ServerAddress() != p.params.ServerAddress {
		t.Fatalf("host tunnel: mtu %d iface %q rsd %d", p.host.MTU(), p.host.Interface(), p.host.RSDPort())
	}
	hc, dc := p.connect(t)
	const n = 4 << 20
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = transfer(hc, dc, n) }()
	go func() { defer wg.Done(); errs[1] = transfer(dc, hc, n) }()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// Counters are final once the pumps have stopped: the last bytes can reach the far end
	// before their batch is counted.
	p.host.Close()
	p.dev.Close()
	hs, ds := p.host.Stats(), p.dev.Stats()
	if hs.Sent.Bytes < n || hs.Received.Bytes < n || ds.Sent.Bytes < n || ds.Received.Bytes < n {
		t.Fatalf("counters below the %d bytes moved: host %+v device %+v", n, hs, ds)
	}
	if hs.Sent.Dropped+hs.Received.Dropped+ds.Sent.Dropped+ds.Received.Dropped != 0 {
		t.Fatalf("drops: host %+v device %+v", hs, ds)
	}
	if sent, recv := p.host.Bytes(); sent != p.host.Stats().Sent.Bytes && recv < n {
		t.Fatalf("Bytes %d %d", sent, recv)
	}
}

// TestPeerGoneEndsTunnel: when the device side goes away (unplug), the host tunnel ends by
// itself, says why, and has closed its device.
func TestPeerGoneEndsTunnel(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	hc, _ := p.connect(t)
	p.dev.Close()
	if !errors.Is(p.dev.Err(), ErrClosed) {
		t.Fatalf("device side Err %v", p.dev.Err())
	}
	select {
	case <-p.host.Done():
	case <-time.After(failAfter):
		t.Fatal("host tunnel still up after the device side closed")
	}
	err := p.host.Err()
	if err == nil || !strings.HasPrefix(err.Error(), "tunnel: transport: ") ||
		!(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("host Err %v", err)
	}
	// The stack is gone: connections through it fail instead of hanging.
	hc.SetDeadline(time.Now().Add(failAfter))
	if _, err := hc.Write([]byte("x")); err == nil {
		if _, err := hc.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection through a dead tunnel still works")
		}
	}
	if p.host.Close() != nil || !errors.Is(p.host.Err(), io.EOF) && !errors.Is(p.host.Err(), syscall.ECONNRESET) {
		t.Fatalf("Close after the end changed Err to %v", p.host.Err())
	}
}

func TestCloseReportsErrClosed(t *testing.T) {
	p := newPair(t, Options{}, Options{})
	if p.host.Err() != nil {
		t.Fatalf("Err while running: %v", p.host.Err())
	}
	p.host.Close()
	if !errors.Is(p.host.Err(), ErrClosed) {
		t.Fatalf("Err %v", p.host.Err())
	}
	<-p.dev.Done()
	if !errors.Is(p.dev.Err(), io.EOF) {
		t.Fatalf("device side Err %v", p.dev.Err())
	}
}

// TestDropReceivedAbove: with the device dropping packets above 8192 bytes (as USB
// CoreDeviceProxy does), a 9000-byte datagram sent first never arrives while a small one sent
// after it does. Order on the stream proves the drop without waiting for a timeout.
func TestDropReceivedAbove(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			devOpts := Options{}
			if drop {
				devOpts.DropReceivedAbove = CoreDeviceProxyDropAbove
			}
			p := newPair(t, Options{}, devOpts)
			uc, err := p.devStack.Net.ListenUDPAddrPort(netip.AddrPortFrom(p.params.ServerAddress, 9))
			if err != nil {
				t.Fatal(err)
			}
			defer uc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), failAfter)
			defer cancel()
			hc, err := p.host.DialContext(ctx, "udp", netip.AddrPortFrom(p.params.ServerAddress, 9).String())
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Close()
			for _, n := range []int{9000, 100} { // IPv6 packets of 9048 and 148 bytes
				if _, err := hc.Write(make([]byte, n)); err != nil {
					t.Fatal(err)
				}
			}
			uc.SetDeadline(time.Now().Add(failAfter))
			buf := make([]byte, 16000)
			n, _, err := uc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := 9000
			if drop {
				want = 100
			}
			if n != want {
				t.Fatalf("first datagram at the device: %d bytes, want %d", n, want)
			}
			if got := p.dev.Stats().Received.Dropped; drop != (got > 0) {
				t.Fatalf("device dropped %d packets", got)
			}
		})
	}
}

// TestMTUClampAvoidsDrop: a host clamped to 8192 moves bulk TCP to a device that drops larger
// packets, without a single drop.
func TestMTUClampAvoidsDrop(t *testing.T) {
	p := newPair(t, Options{MTUClamp: CoreDeviceProxyDropAbove}, Options{DropReceivedAbove: CoreDeviceProxyDropAbove})
	if p.host.MTU() != 8192 || p.params.MTU != 16000 {
		t.Fatalf("host MTU %d, granted %d", p.host.MTU(), p.params.MTU)
	}
	hc, dc := p.connect(t)
	if err := transfer(hc, dc, 2<<20); err != nil {
		t.Fatal(err)
	}
	if d := p.dev.Stats().Received.Dropped; d != 0 {
		t.Fatalf("device dropped %d packets despite the clamp", d)
	}
}

// eventually polls cond until it holds, failing only after failAfter.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

// chanPump is a Tunnel over a channel TUN and a pipe, to drive the pump packet by packet.
func chanPump(t *testing.T, opts Options) (*Tunnel, *tuntest.ChannelTUN, net.Conn) {
	t.Helper()
	ct := tuntest.NewChannelTUN()
	a, b := net.Pipe()
	tn := New(a, ct.TUN(), nil, opts)
	t.Cleanup(func() { tn.Close(); b.Close() })
	return tn, ct, b
}

func TestPumpForwardsOnlyIPv6(t *testing.T) {
	tn, ct, peer := chanPump(t, Options{})
	v6 := echoRequest(addrA, addrB, 1, 8)
	v4 := append([]byte{}, v6...)
	v4[0] = 0x45
	bad := append([]byte{}, v6...)
	bad[5]++ // header says one byte more than the packet has
	go func() {
		for _, p := range [][]byte{v4, bad, v6} {
			ct.Outbound <- p
		}
	}()
	peer.SetDeadline(time.Now().Add(failAfter))
	got := make([]byte, 100)
	n, err := peer.Read(got)
	if err != nil || !bytes.Equal(got[:n], v6) {
		t.Fatalf("transport got %x, %v", got[:n], err)
	}
	eventually(t, func() bool { return tn.Stats().Sent.Packets == 1 })
	if st := tn.Stats().Sent; st.Packets != 1 || st.Bytes != uint64(len(v6)) || st.Dropped != 2 {
		t.Fatalf("sent counters %+v", st)
	}
}

// TestPumpDirectionsIndependent: a device that stops accepting packets does not stop the other
// direction.
func TestPumpDirectionsIndependent(t *testing.T) {
	tn, ct, peer := chanPump(t, Options{})
	peer.SetDeadline(time.Now().Add(failAfter))
	in := echoRequest(addrB, addrA, 1, 8)
	go peer.Write(stream(in, in, in)) // nobody reads ct.Inbound: the receive side blocks
	buf := make([]byte, 100)
	for i := range 3 {
		out := echoRequest(addrA, addrB, uint16(i), 8)
		ct.Outbound <- out
		n, err := io.ReadFull(peer, buf[:len(out)])
		if err != nil || !bytes.Equal(buf[:n], out) {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	for range 3 {
		if got := <-ct.Inbound; !bytes.Equal(got, in) {
			t.Fatal("receive side delivered garbage")
		}
	}
	eventually(t, func() bool { st := tn.Stats(); return st.Sent.Packets == 3 && st.Received.Packets == 3 })
	if st := tn.Stats(); st.Sent.Packets != 3 || st.Received.Packets != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPumpStreamErrors(t *testing.T) {
	t.Run("oversized", func(t *testing.T) {
		tn, ct, peer := chanPump(t, Options{})
		big := echoRequest(addrB, addrA, 1, 3000) // larger than the channel TUN's 1420 MTU
		small := echoRequest(addrB, addrA, 2, 8)
		go peer.Write(stream(big, small))
		if got := <-ct.Inbound; !bytes.Equal(got, small) {
			t.Fatalf("device got %x", got)
		}
		eventually(t, func() bool { return tn.Stats().Received.Packets == 1 })
		if st := tn.Stats().Received; st.Dropped != 1 || st.Packets != 1 {
			t.Fatalf("received counters %+v", st)
		}
	})
	t.Run("not IPv6", func(t *testing.T) {
		tn, _, peer := chanPump(t, Options{})
		go peer.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n----------------------------------"))
		select {
		case <-tn.Done():
		case <-time.After(failAfter):
			t.Fatal("tunnel survived a corrupt stream")
		}
		if !errors.Is(tn.Err(), ErrNotIPv6) {
			t.Fatalf("Err %v", tn.Err())
		}
	})
}

// TestCloseUnderLoad closes either side while TCP runs full speed both ways: teardown must
// neither hang, panic nor leak (goleak checks the last part at exit).
func TestCloseUnderLoad(t *testing.T) {
	for i := range 20 {
		p := newPair(t, Options{}, Options{})
		hc, dc := p.connect(t)
		var wg sync.WaitGroup
		for _, c := range []net.Conn{hc, dc} {
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
			go func() {
				defer wg.Done()
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
		eventually(t, func() bool { return p.host.Stats().Received.Bytes > 1<<20 && p.host.Stats().Sent.Bytes > 1<<20 })
		victim := p.host
		if i%2 == 1 {
			victim = p.dev
		}
		victim.Close()
		for _, tn := range []*Tunnel{p.host, p.dev} {
			select {
			case <-tn.Done():
			case <-time.After(failAfter):
				t.Fatal("tunnel still up after one side closed under load")
			}
		}
		hc.Close()
		dc.Close()
		wg.Wait()
	}
}
