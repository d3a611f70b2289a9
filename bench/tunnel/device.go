package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tunneltest"
)

// Ports of the device-side transfer endpoints inside the tunnel.
const (
	sinkPort   = 9001
	sourcePort = 9002
)

// throwaway makes a self-signed ECDSA P-256 certificate (the pair record's certificates in
// the real flow; nobody verifies them) and writes its PEM files into dir.
func throwaway(dir, name string) (tls.Certificate, string, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, "", "", err
	}
	cp, kp := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	cf, kf := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cf, cp, 0o600); err != nil {
		return tls.Certificate{}, "", "", err
	}
	if err := os.WriteFile(kf, kp, 0o600); err != nil {
		return tls.Certificate{}, "", "", err
	}
	c, err := tls.X509KeyPair(cp, kp)
	return c, cf, kf, err
}

// deviceTLSConfig is the simulated device's CoreDeviceProxy TLS as sim's lockdownd sets it:
// TLS 1.2 or 1.3 (the client chooses), a client certificate required.
func deviceTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		MinVersion:             tls.VersionTLS12,
	}
}

// device is one tunnel's device side, listening for the host on a loopback TCP port.
type device struct {
	addr string // where the host connects: host:port, or unix: and a socket's path (see listenDevice)
	ln   net.Listener
	ep   chan *endpoints // the transfer endpoints, once the tunnel is up
	stop func()
}

// serveOnce accepts one TLS connection on a fresh listener of the bench's transport and hands it to serve.
func serveOnce(cfg *tls.Config, serve func(ctx context.Context, tc *tls.Conn, ep chan<- *endpoints)) (*device, error) {
	ln, addr, cleanup, err := listenDevice()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &device{addr: addr, ln: ln, ep: make(chan *endpoints, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(cork.New(nc), cfg) // as sim's lockdownd serves a TLS service
		hctx, hcancel := context.WithTimeout(ctx, 15*time.Second)
		err = tc.HandshakeContext(hctx)
		hcancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "device: TLS:", err)
			nc.Close()
			return
		}
		serve(ctx, tc, d.ep)
	}()
	d.stop = func() {
		cancel()
		ln.Close()
		<-done
		cleanup()
	}
	return d, nil
}

// endpointsWithin waits for the device's endpoints.
func (d *device) endpoints() (*endpoints, error) {
	select {
	case e := <-d.ep:
		d.ep <- e
		return e, nil
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("device tunnel never came up")
	}
}

// simDevice is the simulator's CoreDeviceProxy (sim.Device.ServeTunnel: gVisor stack, RSD and
// services) granting at most mtu, with the transfer endpoints in its stack.
func simDevice(cfg *tls.Config, d *sim.Device, mtu int, dur time.Duration) (*device, error) {
	return serveOnce(cfg, func(ctx context.Context, tc *tls.Conn, ep chan<- *endpoints) {
		var e *endpoints
		o := sim.TunnelOptions{MaxMTU: mtu, OnStart: func(s *sim.TunnelSession) {
			sink, err1 := s.Stack.Net.ListenTCPAddrPort(netip.AddrPortFrom(s.Params.ServerAddress, sinkPort))
			src, err2 := s.Stack.Net.ListenTCPAddrPort(netip.AddrPortFrom(s.Params.ServerAddress, sourcePort))
			if err1 != nil || err2 != nil {
				fmt.Fprintln(os.Stderr, "device: listen:", err1, err2)
				return
			}
			e = serveEndpoints(sink, src, dur)
			ep <- e
		}}
		d.ServeTunnel(ctx, tc, o)
		if e != nil {
			e.close()
		}
	})
}

// netnsDevice is a device side whose IPv6 stack is the kernel's: iosmux's pump with a kernel
// TUN holding the server address in a fresh network namespace (anonymous: it disappears with
// its last descriptor), and the transfer endpoints as kernel sockets in that namespace.
func netnsDevice(cfg *tls.Config, mtu int, dur time.Duration) (*device, error) {
	return serveOnce(cfg, func(ctx context.Context, tc *tls.Conn, ep chan<- *endpoints) {
		hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		p, err := tunnel.ServerHandshake(hctx, tc, func(req int) (*tunnel.Params, error) {
			return tunnel.RandomParams(max(min(req, mtu), tunnel.MinMTU), 1), nil
		})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "netns device:", err)
			tc.Close()
			return
		}
		// The device's TUN holds the server address and routes to the client.
		mine := *p
		mine.ClientAddress, mine.ServerAddress = p.ServerAddress, p.ClientAddress
		var dev *tunnel.KernelDevice
		var e *endpoints
		var t *tunnel.Tunnel
		// tunnel.New runs inside the namespace too: it asks the device for its MTU by name.
		err = tunneltest.InNetNS(func() error {
			td, err := tunnel.Kernel{Name: "iosbdev%d"}.Create(&mine, p.MTU)
			if err != nil {
				return err
			}
			dev = td.(*tunnel.KernelDevice)
			sink, err := net.Listen("tcp6", netip.AddrPortFrom(p.ServerAddress, sinkPort).String())
			if err != nil {
				return err
			}
			src, err := net.Listen("tcp6", netip.AddrPortFrom(p.ServerAddress, sourcePort).String())
			if err != nil {
				sink.Close()
				return err
			}
			e = serveEndpoints(sink, src, dur)
			t = tunnel.New(tc, dev, p, tunnel.Options{})
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "netns device:", err)
			if dev != nil {
				dev.Close()
			}
			tc.Close()
			return
		}
		ep <- e
		select {
		case <-ctx.Done():
		case <-t.Done():
		}
		t.Close()
		e.close()
	})
}
