package quictunnel

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"
)

// Listener is the device's side of a QUIC createListener: it accepts a connection only from the
// client whose certificate key is the SPKI createListener carried.
type Listener struct {
	ln   *quic.Listener
	spki []byte
}

// Listen listens on addr (host:port, UDP) for a client holding the key of clientSPKI, with a
// self-signed certificate for key (nil: a fresh P-256 key); PublicKey is what createListener's
// reply carries as devicePublicKey.
func Listen(addr string, clientSPKI []byte, key crypto.Signer) (*Listener, error) {
	if _, err := ParseSPKI(clientSPKI); err != nil {
		return nil, fmt.Errorf("quictunnel: createListener key: %w", err)
	}
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key = k
	}
	spki, err := SPKI(key.Public())
	if err != nil {
		return nil, err
	}
	cert, err := selfSigned(key)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		Certificates:          []tls.Certificate{cert},
		NextProtos:            []string{ALPN},
		MinVersion:            tls.VersionTLS13,
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: requireKey(clientSPKI),
	}
	ln, err := quic.ListenAddr(addr, tc, quicConfig(true))
	if err != nil {
		return nil, fmt.Errorf("quictunnel: listen %s: %w", addr, err)
	}
	return &Listener{ln: ln, spki: spki}, nil
}

// Addr is the UDP address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// PublicKey is the SPKI of the listener's certificate key.
func (l *Listener) PublicKey() []byte { return l.spki }

// Accept waits for the client's connection and its CDTunnel stream. The Conn owns the
// listener from then on: closing it closes the listener (and its socket).
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	qc, err := l.ln.Accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("quictunnel: accept: %w", err)
	}
	st, err := qc.AcceptStream(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quictunnel: waiting for the CDTunnel stream: %w", err)
	}
	return newConn(qc, st, l.ln), nil
}

// Close stops listening; with ListenAddr's socket this also ends any accepted connection.
func (l *Listener) Close() error { return l.ln.Close() }
