package tlspsk

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// loopbackPair returns a connected client/server pair of wrapped loopback TCP connections, the
// server end draining everything it reads into done.
func loopbackPair(b *testing.B, wrapClient, wrapServer func(net.Conn) net.Conn) (net.Conn, chan int64) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- -1
			return
		}
		s := wrapServer(raw)
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		done <- n
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	return wrapClient(raw), done
}

// BenchmarkBulk moves 8 MiB per iteration through a TLS-PSK suite and, in the same iteration,
// through crypto/tls (TLS 1.2 ECDHE-ECDSA AES-GCM of the same key size) over loopback, and reports
// our throughput as a ratio of crypto/tls's ("x-crypto-tls", 1.0 = as fast).
func BenchmarkBulk(b *testing.B) {
	const total = 8 << 20
	key := make([]byte, 32)
	cert := peertest.SelfSignedCert(b)
	for _, id := range DefaultSuites {
		base := tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
		if suites[id].keyLen == 16 {
			base = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
		}
		b.Run(SuiteName(id), func(b *testing.B) {
			b.SetBytes(total)
			var ours, theirs time.Duration
			for b.Loop() {
				c, done := loopbackPair(b,
					func(n net.Conn) net.Conn { return Client(n, Config{PSK: key, Suites: []uint16{id}}) },
					func(n net.Conn) net.Conn { return Server(n, Config{PSK: key}) })
				ours += peertest.TimedPush(b, c, done, total)
				tc, tdone := loopbackPair(b,
					func(n net.Conn) net.Conn {
						return tls.Client(n, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{base}})
					},
					func(n net.Conn) net.Conn {
						return tls.Server(n, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{base}})
					})
				theirs += peertest.TimedPush(b, tc, tdone, total)
			}
			b.ReportMetric(float64(theirs)/float64(ours), "x-crypto-tls")
			b.ReportMetric(float64(total)*float64(b.N)/ours.Seconds()/1e6, "MB/s-ours")
			b.ReportMetric(float64(total)*float64(b.N)/theirs.Seconds()/1e6, "MB/s-crypto-tls")
		})
	}
}

// BenchmarkHandshake is one TLS-PSK handshake over loopback TCP.
func BenchmarkHandshake(b *testing.B) {
	key := make([]byte, 32)
	for b.Loop() {
		c, done := loopbackPair(b,
			func(n net.Conn) net.Conn { return Client(n, Config{PSK: key}) },
			func(n net.Conn) net.Conn { return Server(n, Config{PSK: key}) })
		if err := c.(*Conn).Handshake(); err != nil {
			b.Fatal(err)
		}
		c.Close()
		<-done
	}
}
