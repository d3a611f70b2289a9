// Shared by tuntap-handshake.mjs and tuntap-handshake-psk.mjs: open a plain TCP
// connection, hand it to appium-ios-tuntap's native TunnelForwarder for TLS, run the
// CDTunnel handshake, print its result, close. No TUN device is created (that is
// only done by startForwarding / connectToTunnel*), so no root is needed.
//
// The CDTunnel exchange (appium-ios-tuntap 2.0.5, src/native/tunnel_forwarder.cc),
// inside the TLS session:
//  client -> server, one SSL_write:
//     "CDTunnel" (8 ASCII bytes) + u16 BIG-endian JSON length + JSON, the JSON being
//     exactly  {"type":"clientHandshakeRequest","mtu":<requestedMtu>}
//     (compact, no spaces, keys in that order; mtu a decimal integer).
//  server -> client: "CDTunnel" + u16 BE length + JSON body (≤ 65535 bytes). The
//     magic is checked (else "Invalid CDTunnel magic in handshake response"). The
//     JSON is NOT parsed as JSON; it is searched with substrings:
//       - `"clientParameters"`, then the first `{` after it and the first `}` after
//         that: clientParameters must be a flat object (no nested object before
//         its keys);
//       - inside it `"address":"` (no space after the colon!) up to the next `"`,
//         and `"mtu":` followed by a decimal (strtoul, so a space after the colon is
//         tolerated here, but a quoted "1280" is not: it parses as 0);
//       - anywhere in the body `"serverAddress":"` (no space) up to the next `"`;
//       - anywhere in the body `"serverRSDPort":` + decimal; REQUIRED (missing ->
//         "Failed to parse serverRSDPort"); truncated to u16.
//     Anything else (type, netmask, …) is ignored. Compact JSON, as the device and
//     Go's encoding/json emit it, always works.
//     e.g. {"clientParameters":{"address":"fdc5:…::2","netmask":"ffff:ffff:ffff:ffff::","mtu":1280},
//           "serverAddress":"fdc5:…::1","type":"serverHandshakeResponse","serverRSDPort":58783}
//  Timeouts: TLS connect 15 s; the CDTunnel write+read shares one 15 s deadline.
//  Close: SSL_shutdown (close_notify) then close(fd). IP packets would follow
//  the reply as raw IPv6 packets in TLS records; this script never sends any.

import net from 'node:net';
import { TunnelForwarder } from 'appium-ios-tuntap';
import { onTimeout } from './harness.mjs';

/** Connects TCP to host:port (5 s), returns the socket. */
export function dialTcp(host, port) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TCP connect to ${host}:${port} timed out after 5000ms`));
    }, 5000);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/**
 * Bridges `remote` through a loopback TCP pair and returns the near end, which is
 * what the native forwarder gets. The forwarder dup()s the fd it is given and
 * blocks a libuv pool thread on it for up to 15 s; process.exit() would wait for
 * that thread. Owning the far end lets the hard timeout wake it at once: destroying
 * it gives the native side EOF. The bytes on the wire to the server are unchanged
 * (the server sees an ordinary TCP client).
 */
async function bridge(remote) {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const near = net.createConnection({ host: '127.0.0.1', port: server.address().port, noDelay: true });
  await new Promise((resolve, reject) => {
    near.once('error', reject);
    near.once('connect', resolve);
  });
  const far = await accepted;
  server.close();
  far.setNoDelay(true);
  far.pipe(remote);
  remote.pipe(far);
  const teardown = () => {
    far.destroy();
    remote.destroy();
  };
  far.on('error', teardown);
  remote.on('error', teardown);
  far.on('close', teardown);
  remote.on('close', teardown);
  onTimeout(teardown);
  return { near, teardown };
}

/**
 * @param {net.Socket} remote connected plain TCP socket to the server
 * @param {(f: TunnelForwarder, s: net.Socket) => Promise<void>} tlsConnect runs
 *   f.connect(s, …) / f.connectPsk(s, …) on the socket it is given
 * @param {number} mtu requested MTU, sent as is
 */
export async function cdtunnelHandshake(remote, tlsConnect, mtu) {
  remote.setKeepAlive(true, 1000);
  const { near, teardown } = await bridge(remote);
  const forwarder = new TunnelForwarder();
  try {
    try {
      await tlsConnect(forwarder, near);
    } catch (e) {
      throw new Error(`TLS: ${e.message || e}`, { cause: e });
    }
    let info;
    try {
      info = await forwarder.handshake(mtu);
    } catch (e) {
      throw new Error(`CDTunnel handshake: ${e.message || e}`, { cause: e });
    }
    return {
      clientParameters: { address: info.clientParameters.address, mtu: info.clientParameters.mtu },
      serverAddress: info.serverAddress,
      serverRSDPort: info.serverRSDPort,
    };
  } finally {
    forwarder.stop();
    if (!near.destroyed) {
      near.destroy();
    }
    teardown();
  }
}

/** Parses the MTU argument (any u32; the package's own callers clamp to 1280..65000). */
export function mtuArg(usageError, s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    usageError(`bad mtu ${JSON.stringify(s)}`);
  }
  return n;
}
