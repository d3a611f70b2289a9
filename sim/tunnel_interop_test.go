package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/sim/profile"
)

// throwawayCert makes a self-signed ECDSA certificate; it stands in for the pair record's
// host and device certificates, which appium-ios-tuntap does not verify.
func throwawayCert(t *testing.T, cn string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

// TestTuntapHandshake drives the device's CoreDeviceProxy with appium-ios-tuntap's native
// TunnelForwarder (TLS 1.2 with a client certificate, then its CDTunnel handshake and its
// substring parser of our response), as appium-ios-remotexpc does after StartService.
func TestTuntapHandshake(t *testing.T) {
	srvCert, _, _ := throwawayCert(t, "device")
	_, hostCert, hostKey := throwawayCert(t, "host")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "host.pem"), filepath.Join(dir, "host.key")
	if err := os.WriteFile(certFile, hostCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, hostKey, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAnyClientCert, // the device wants the pair record's host cert
		MinVersion:   tls.VersionTLS12,
	}
	d := NewDevice(profile.Default(), "tuntap", nil)
	for _, c := range []struct{ request, grant int }{{16000, 16000}, {1280, 1280}, {65000, DefaultTunnelMTU}} {
		t.Run(strconv.Itoa(c.request), func(t *testing.T) {
			sessions := make(chan *TunnelSession, 1)
			d.SetTunnelOptions(TunnelOptions{OnStart: func(s *TunnelSession) { sessions <- s }})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			served := make(chan error, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				tc := tls.Server(nc, cfg)
				ctx, cancel := context.WithTimeout(context.Background(), tunFailAfter)
				defer cancel()
				if err := tc.HandshakeContext(ctx); err != nil {
					nc.Close()
					served <- err
					return
				}
				lockdownServices[CoreDeviceProxyService].Serve(d, context.Background(), tc)
				served <- nil
			}()
			port := ln.Addr().(*net.TCPAddr).Port
			out, err := peertest.Node(t, 60*time.Second, nil, "tuntap-handshake.mjs",
				"127.0.0.1", strconv.Itoa(port), strconv.Itoa(c.request), certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				ClientParameters struct {
					Address string `json:"address"`
					MTU     int    `json:"mtu"`
				} `json:"clientParameters"`
				ServerAddress string `json:"serverAddress"`
				ServerRSDPort int    `json:"serverRSDPort"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("tuntap output %q: %v", out, err)
			}
			var s *TunnelSession
			select {
			case s = <-sessions:
			case <-time.After(tunFailAfter):
				t.Fatal("device never started the tunnel")
			}
			p := s.Params
			if got.ClientParameters.Address != p.ClientAddress.String() || got.ClientParameters.MTU != c.grant ||
				p.MTU != c.grant || got.ServerAddress != p.ServerAddress.String() || got.ServerRSDPort != int(p.ServerRSDPort) {
				t.Fatalf("appium-ios-tuntap read %+v; device granted %+v", got, p)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
		})
	}
}
