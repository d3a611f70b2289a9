package quictunnel_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tlspsk"
)

// benchTotal is what one iteration moves through each transport.
const benchTotal = 8 << 20

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	s := <-acc
	if s == nil {
		b.Fatal("accept failed")
	}
	return c, s
}

// handshake runs both sides' handshakes of a wrapped pair.
func handshake(b *testing.B, c, s interface{ HandshakeContext(context.Context) error }) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.HandshakeContext(ctx) }()
	if err := c.HandshakeContext(ctx); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// tlsPair is a loopback TCP pair under crypto/tls (TLS 1.3, AES-128-GCM as QUIC negotiates).
func tlsPair(b *testing.B) (net.Conn, net.Conn) {
	cert := peertest.SelfSignedCert(b)
	hc, dc := tcpPair(b)
	s := tls.Server(dc, &tls.Config{Certificates: []tls.Certificate{cert}, DynamicRecordSizingDisabled: true})
	c := tls.Client(hc, &tls.Config{InsecureSkipVerify: true, DynamicRecordSizingDisabled: true})
	handshake(b, c, s)
	return c, s
}

// pskPair is a loopback TCP pair under our TLS 1.2 PSK (AES-256-GCM, what go-ios negotiates).
func pskPair(b *testing.B) (net.Conn, net.Conn) {
	psk := make([]byte, 32)
	hc, dc := tcpPair(b)
	c, s := tlspsk.Client(hc, tlspsk.Config{PSK: psk}), tlspsk.Server(dc, tlspsk.Config{PSK: psk})
	handshake(b, c, s)
	return c, s
}

// streamTunnel starts a tunnel pair over a stream transport with the given MTU granted.
func streamTunnel(b *testing.B, hc, dc net.Conn, mtu int) *quicPair {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	devc := make(chan devResult, 1)
	go func() {
		p, err := tunnel.ServerHandshake(ctx, dc, func(int) (*tunnel.Params, error) { return tunnel.RandomParams(mtu, 1), nil })
		if err != nil {
			devc <- devResult{err: err}
			return
		}
		stack, err := tunnel.NewUserspace(p.ServerAddress, p.MTU)
		if err != nil {
			devc <- devResult{err: err}
			return
		}
		devc <- devResult{t: tunnel.New(dc, stack, p, tunnel.Options{}), stack: stack, p: p}
	}()
	host, err := tunnel.Start(ctx, hc, tunnel.Options{RequestMTU: mtu})
	d := <-devc
	if err != nil || d.err != nil {
		b.Fatalf("host %v, device %v", err, d.err)
	}
	b.Cleanup(func() { host.Close(); d.t.Close() })
	return &quicPair{host: host, dev: d.t, devStack: d.stack, params: d.p}
}

// pushThrough sends total bytes host → device over TCP inside the tunnel and returns the time
// until the device has read them all.
func pushThrough(b *testing.B, p *quicPair, total int) time.Duration {
	b.Helper()
	addr := netip.AddrPortFrom(p.params.ServerAddress, 9)
	ln, err := p.devStack.Net.ListenTCPAddrPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- n
	}()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := p.host.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		b.Fatal(err)
	}
	return peertest.TimedPush(b, c, got, total)
}

// streamPush moves total bytes over a connected pair, the far end draining.
func streamPush(b *testing.B, c io.WriteCloser, s io.ReadCloser, total int) time.Duration {
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		got <- n
	}()
	return peertest.TimedPush(b, c, got, total)
}

// report prints QUIC's rate and the others' as ratios of crypto/tls's ("x-crypto-tls": 1.0 is
// as fast as crypto/tls).
func report(b *testing.B, quicD, tlsD, pskD time.Duration) {
	mb := float64(benchTotal) * float64(b.N) / 1e6
	b.ReportMetric(mb/quicD.Seconds(), "MB/s-quic")
	b.ReportMetric(mb/tlsD.Seconds(), "MB/s-crypto-tls")
	b.ReportMetric(mb/pskD.Seconds(), "MB/s-tlspsk")
	b.ReportMetric(float64(tlsD)/float64(quicD), "quic-x-crypto-tls")
	b.ReportMetric(float64(tlsD)/float64(pskD), "tlspsk-x-crypto-tls")
}

// BenchmarkBulk moves 8 MiB per iteration over loopback, in the same iteration through QUIC,
// crypto/tls (TLS 1.3 AES-128-GCM over TCP) and TLS-PSK (TLS 1.2 AES-256-GCM over TCP):
//
//   - tunnel: TCP inside a tunnel (gVisor stacks on both ends) whose packets go as QUIC
//     datagrams, against the same tunnel over the TLS streams at the same MTU (what one
//     datagram carries) — the tunnel's real data path;
//   - stream: the raw transports, a QUIC stream against the TLS connections.
//
// Run: go test -run '^$' -bench Bulk -benchtime 5x ./tunnel/quictunnel/
func BenchmarkBulk(b *testing.B) {
	b.Run("tunnel", func(b *testing.B) {
		b.SetBytes(benchTotal)
		var q, t, p time.Duration
		var sent, lost uint64
		for b.Loop() {
			qp, err := startQUICPair(b, tunnel.Userspace{})
			if err != nil {
				b.Fatal(err)
			}
			mtu := qp.host.MTU()
			q += pushThrough(b, qp, benchTotal)
			hc, dc := tlsPair(b)
			t += pushThrough(b, streamTunnel(b, hc, dc, mtu), benchTotal)
			hc, dc = pskPair(b)
			p += pushThrough(b, streamTunnel(b, hc, dc, mtu), benchTotal)
			hs, ds := qp.host.Stats(), qp.dev.Stats()
			if hs.Sent.Dropped != 0 {
				b.Fatalf("QUIC host dropped %d packets", hs.Sent.Dropped)
			}
			// Datagrams are not retransmitted: what the host sent and the device never got
			// was lost on the way (quic-go's receive queue holds 128), and TCP inside resent it.
			sent += hs.Sent.Packets
			lost += hs.Sent.Packets - min(hs.Sent.Packets, ds.Received.Packets)
			b.ReportMetric(float64(mtu), "mtu")
		}
		report(b, q, t, p)
		b.ReportMetric(100*float64(lost)/float64(max(sent, 1)), "quic-lost-%")
	})
	b.Run("stream", func(b *testing.B) {
		b.SetBytes(benchTotal)
		var q, t, p time.Duration
		for b.Loop() {
			c, s := connect(b, clientKey(b, "a"))
			q += streamPush(b, sendSide{c.Stream()}, io.NopCloser(s.Stream()), benchTotal)
			hc, dc := tlsPair(b)
			t += streamPush(b, hc, dc, benchTotal)
			hc, dc = pskPair(b)
			p += streamPush(b, hc, dc, benchTotal)
		}
		report(b, q, t, p)
	})
}

// sendSide is a QUIC tunnel's stream as a writer whose Close ends the stream's send side.
type sendSide struct{ io.ReadWriter }

func (s sendSide) Close() error { return s.ReadWriter.(io.Closer).Close() }
