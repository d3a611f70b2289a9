package quictunnel

import (
	"crypto/tls"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN is the application protocol both sides negotiate (tunnel.md §4).
const ALPN = "RemotePairingTunnelProtocol"

// MaxDatagramFrameSize is the max_datagram_frame_size pymobiledevice3 advertises (tunnel.md §4).
// quic-go advertises its own fixed 16383; this package uses the value as the bound on any
// datagram it accepts from the peer or hands to SendDatagram.
const MaxDatagramFrameSize = 14000

// IdleTimeout is pymobiledevice3's QUIC idle timeout (tunnel.md §4, §10).
const IdleTimeout = 30 * time.Second

// KeepAlivePeriod is how often pymobiledevice3 sends a PING (tunnel.md §4; go-ios uses 1 s).
const KeepAlivePeriod = 15 * time.Second

// MaxUDPPayload is the UDP payload pymobiledevice3 forces: 1500 − 40 − 8, because "the iOS
// device uses an MTU of 1500" (tunnel.md §4). Used as quic-go's initial packet size, the largest
// it allows.
const MaxUDPPayload = 1452

// RequestMTU is the MTU pymobiledevice3 asks for in the CDTunnel handshake over QUIC (tunnel.md
// §4); go-ios asks for GoIOSRequestMTU. What a device grants above 1280 is UNCONFIRMED.
const RequestMTU = 1420

// GoIOSRequestMTU is the MTU go-ios requests on every path (tunnel.md §5).
const GoIOSRequestMTU = 1280

// PaddingDatagramLen is the size of the datagram a client sends right after the QUIC handshake
// "to force the MTU size" (pymobiledevice3: ASCII 'x', go-ios: zeros). Whether the device
// needs it is UNCONFIRMED; it is sent, and the device side drops it (it is no IPv6 packet).
const PaddingDatagramLen = 1024

// HandshakeTimeout bounds the QUIC handshake when the caller's context has no deadline.
const HandshakeTimeout = 10 * time.Second

// ClientKeyBits is the size of the RSA client key (e = 65537), tunnel.md §4.
const ClientKeyBits = 2048

// quicConfig is the transport configuration of both roles; the peer may open one stream (the
// server: the CDTunnel stream; the client: nothing is expected, one of each kind is tolerated).
func quicConfig(server bool) *quic.Config {
	uni := int64(1)
	if server {
		uni = -1
	}
	return &quic.Config{
		EnableDatagrams:       true,
		MaxIdleTimeout:        IdleTimeout,
		KeepAlivePeriod:       KeepAlivePeriod,
		HandshakeIdleTimeout:  HandshakeTimeout,
		InitialPacketSize:     MaxUDPPayload,
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: uni,
	}
}

// curves are the key exchanges offered: go-ios restricts itself to P-256 and pymobiledevice3
// offers it; whether a device takes X25519 is UNCONFIRMED (tunnel.md §4).
var curves = []tls.CurveID{tls.CurveP256}
