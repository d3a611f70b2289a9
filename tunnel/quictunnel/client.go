package quictunnel

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"
)

// Dial connects to a device's QUIC tunnel listener at addr (host:port) with a client
// certificate for key (whose SPKI went in createListener), sends the padding datagram and opens
// the CDTunnel stream. The device's certificate is not verified, as no client does (tunnel.md
// §4); compare PeerSPKI with createListener's devicePublicKey to check it. ctx bounds the dial
// (HandshakeTimeout when it has no deadline).
func Dial(ctx context.Context, addr string, key *rsa.PrivateKey) (*Conn, error) {
	if key == nil {
		return nil, errors.New("quictunnel: no client key")
	}
	cert, err := selfSigned(key)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, HandshakeTimeout)
		defer cancel()
	}
	tc := &tls.Config{
		Certificates:       []tls.Certificate{cert},
		NextProtos:         []string{ALPN},
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   curves,
		InsecureSkipVerify: true, // the device's certificate chains to nothing the host knows
	}
	qc, err := quic.DialAddr(ctx, addr, tc, quicConfig(false))
	if err != nil {
		return nil, fmt.Errorf("quictunnel: dial %s: %w", addr, err)
	}
	if !qc.ConnectionState().SupportsDatagrams.Remote {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quictunnel: %s does not accept datagrams", addr)
	}
	if err := qc.SendDatagram(bytes.Repeat([]byte{'x'}, PaddingDatagramLen)); err != nil {
		var tl *quic.DatagramTooLargeError
		if !errors.As(err, &tl) { // too large for the path: it only probes the MTU anyway
			qc.CloseWithError(0, "")
			return nil, fmt.Errorf("quictunnel: padding datagram: %w", err)
		}
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quictunnel: opening the CDTunnel stream: %w", err)
	}
	return newConn(qc, st, nil), nil
}
