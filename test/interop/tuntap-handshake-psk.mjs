// tuntap-handshake-psk.mjs <host> <port> <pskhex> <mtu> [identity] [--timeout=N]
//
// RemotePairing-style tunnel (the TCP listener from createListener): TLS 1.2 PSK,
// then the CDTunnel handshake, both done by appium-ios-tuntap's native
// TunnelForwarder (connectPsk(socket, {psk, identity}) then handshake(mtu)) — what
// AppleTVTunnelService / connectToTunnelPsk does, minus the TUN.
// <pskhex> is the PSK in hex (the pair-verify derived key, 32 bytes on a device);
// identity defaults to "" (what appium sends to a device).
// Prints one JSON line:
//   {"clientParameters":{"address":"fd…::2","mtu":1280},"serverAddress":"fd…::1","serverRSDPort":58783}
//
// TLS the client does (src/native/tunnel_ssl.cc, OpenSSL 3 linked statically):
// TLS 1.2 ONLY; no certificates; SSL_VERIFY_NONE; cipher string
//   "PSK-AES256-CBC-SHA:PSK-AES128-CBC-SHA:PSK-3DES-EDE-CBC-SHA:PSK-RC4-SHA:PSK"
// i.e. ClientHello offers TLS_PSK_WITH_AES_256_CBC_SHA (0x008d) first,
// TLS_PSK_WITH_AES_128_CBC_SHA (0x008c) second, then every other PSK suite that
// OpenSSL 3 still has (incl. TLS_PSK_WITH_AES_256_GCM_SHA384 0x00a9 and the
// DHE-/ECDHE-/RSA-PSK ones); 3DES and RC4 are gone. The PSK identity is sent as
// given (empty by default); the server's identity hint is ignored. 15 s deadline.
// CDTunnel bytes sent and the reply parsing: see lib/cdtunnel.mjs.

// harness first: it arms the hard timeout before the peer packages load.
import { run, usageError, hostArg, portArg } from './lib/harness.mjs';
import { dialTcp, cdtunnelHandshake, mtuArg } from './lib/cdtunnel.mjs';

const USAGE = 'node tuntap-handshake-psk.mjs <host> <port> <pskhex> <mtu> [identity] [--timeout=N]';

run(USAGE, 4, async ([host, port, pskhex, mtu, identity = '']) => {
  if (!/^([0-9a-fA-F]{2})+$/.test(pskhex)) {
    usageError(USAGE, 'pskhex must be a non-empty even-length hex string');
  }
  const psk = Buffer.from(pskhex, 'hex');
  const requestedMtu = mtuArg((m) => usageError(USAGE, m), mtu);
  const socket = await dialTcp(hostArg(host), portArg(USAGE, port));
  return await cdtunnelHandshake(socket, (f, s) => f.connectPsk(s, { psk, identity }), requestedMtu);
});
