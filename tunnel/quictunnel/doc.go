// Package quictunnel is the QUIC transport of RemotePairing tunnels (tunnel.md §2, §4, path A,
// iOS 17.0–18.1): a client that dials the device's createListener port with a fresh RSA-2048
// client certificate, and a server for the simulator that accepts only the certificate whose
// key was given in createListener. The CDTunnel handshake runs on the first bidirectional
// stream (Conn.Stream); after it every IPv6 packet is one QUIC DATAGRAM frame (Conn.Read and
// Conn.Write), with no stream framing.
package quictunnel
