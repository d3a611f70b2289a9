// tuntap-forward.mjs <host> <port> <mtu> <certPemFile> <keyPemFile>
//
// A <host> starting with / is a unix socket's path (as usbmuxd's is); <port> is then ignored.
//
// appium-ios-tuntap's whole CoreDeviceProxy tunnel, as appium-ios-remotexpc runs it
// (connectToTunnelLockdown): its native OpenSSL forwarder does TLS 1.2 with the
// client certificate on a plain TCP socket to host:port, the CDTunnel handshake
// requesting <mtu> (APPIUM_TUNTAP_MTU_REQUEST_SIZE), makes a kernel TUN with the
// granted address and a /128 route to the server, and forwards packets between
// them with its two native threads. Needs root.
//
// Prints one JSON line {"address","rsdPort","iface","mtu"} once forwarding runs,
// then forwards until stdin ends (or a 10-minute cap), closes the tunnel and exits.
// Used by `go run ./bench/tunnel`.

import net from 'node:net';
import { readFileSync } from 'node:fs';

const [host, port, mtu, certFile, keyFile] = process.argv.slice(2);
if (!keyFile) {
  console.error('usage: node tuntap-forward.mjs <host> <port> <mtu> <certPemFile> <keyPemFile>');
  process.exit(2);
}
process.env.APPIUM_TUNTAP_MTU_REQUEST_SIZE = String(mtu);
// The package logs to stdout in places; only the result line may go there.
console.log = (...a) => console.error(...a);
console.info = (...a) => console.error(...a);
const cap = setTimeout(() => {
  console.error('tuntap-forward: 10-minute cap reached');
  process.exit(3);
}, 600_000);

const { connectToTunnelLockdown } = await import('appium-ios-tuntap');
const socket = await new Promise((resolve, reject) => {
  const s = host.startsWith('/')
    ? net.createConnection({ path: host })
    : net.createConnection({ host, port: Number(port), noDelay: true });
  const t = setTimeout(() => { s.destroy(); reject(new Error('connect timed out')); }, 5000);
  s.once('error', (e) => { clearTimeout(t); reject(e); });
  s.once('connect', () => { clearTimeout(t); s.removeAllListeners('error'); resolve(s); });
});
let conn;
try {
  conn = await connectToTunnelLockdown(socket, {
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
  }, { onDead: (r) => console.error('tuntap-forward: forwarder died:', r) });
} catch (e) {
  console.error('tuntap-forward:', e.message || e);
  process.exit(1);
}
const tun = conn.tunnelManager.tun;
process.stdout.write(JSON.stringify({
  address: conn.Address, rsdPort: conn.RsdPort, iface: tun ? tun.name : '', mtu: Number(mtu),
}) + '\n');
process.stdin.resume();
process.stdin.on('end', async () => {
  clearTimeout(cap);
  await conn.closer();
  process.exit(0);
});
