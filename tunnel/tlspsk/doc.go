// Package tlspsk is a TLS 1.2 pre-shared-key client and server (RFC 4279, RFC 5487) for the
// RemotePairing TCP tunnel: Go's crypto/tls has no PSK. It offers the suites real clients use
// (PSK-AES256-CBC-SHA, PSK-AES128-CBC-SHA, PSK-AES256-GCM-SHA384, PSK-AES128-GCM-SHA256,
// PSK-AES256-CBC-SHA384) behind a net.Conn, with bounded records and handshake messages.
// No session resumption, renegotiation, compression or extensions beyond renegotiation_info.
// CBC records check padding and MAC without branching on secret bytes (as crypto/tls does), but
// the MAC's cost still depends on the padding length: Lucky Thirteen is not fully mitigated, as in
// crypto/tls's CBC suites; prefer the GCM suites (the server does).
package tlspsk
