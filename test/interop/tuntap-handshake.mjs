// tuntap-handshake.mjs <host> <port> <mtu> <certPemFile> <keyPemFile> [--timeout=N]
// tuntap-handshake.mjs <host> <port> <mtu> --pair-record=<plistFile> [--timeout=N]
//
// CoreDeviceProxy-style tunnel: ordinary TLS with the pair record's HOST
// certificate as client certificate, then the CDTunnel handshake, both done by
// appium-ios-tuntap's native TunnelForwarder (connect(socket, {cert, key}) then
// handshake(mtu)) — exactly what appium-ios-remotexpc's CoreDeviceProxy path
// (connectToTunnelLockdown) does after lockdown StartService, minus the TUN.
// Prints one JSON line:
//   {"clientParameters":{"address":"fd…::2","mtu":1280},"serverAddress":"fd…::1","serverRSDPort":58783}
//
// The client certificate comes either from two PEM files, or from a pair-record
// plist (XML or binary, as /var/lib/lockdown/<udid>.plist or what usbmuxd's
// ReadPairRecord returns inside PairRecordData) whose HostCertificate and
// HostPrivateKey are <data> holding PEM text.
//
// Here host:port is a plain TCP endpoint that is already "the service port": in
// the real flow that socket is a usbmuxd Connect to the CoreDeviceProxy port
// returned by lockdown StartService (EnableServiceSSL true); the TLS starts on it
// at once.
//
// TLS the client does (src/native/tunnel_ssl.cc, OpenSSL 3 linked statically from
// the build machine's libssl.a): TLS 1.2 ONLY (min = max = 1.2), OpenSSL default
// cipher list, SSL_VERIFY_NONE (the server certificate is not checked at all),
// presents cert+key (which must match: SSL_CTX_check_private_key) — so the server
// must offer a TLS 1.2 suite with a certificate and may request the client cert
// (CertificateRequest); no SNI is set. 15 s connect deadline.
// CDTunnel bytes sent and the reply parsing: see lib/cdtunnel.mjs.

// harness first: it arms the hard timeout before the peer packages load.
import { run, usageError, hostArg, portArg } from './lib/harness.mjs';
import { readFileSync } from 'node:fs';
// parsePlist is not in the package's "exports", so it is imported by file path.
import { parsePlist } from './node_modules/appium-ios-remotexpc/build/src/lib/plist/index.js';
import { dialTcp, cdtunnelHandshake, mtuArg } from './lib/cdtunnel.mjs';

const USAGE =
  'node tuntap-handshake.mjs <host> <port> <mtu> (<certPemFile> <keyPemFile> | --pair-record=<plistFile>) [--timeout=N]';

function credentials(args, flags) {
  if (flags['pair-record']) {
    const rec = parsePlist(readFileSync(flags['pair-record']));
    if (!rec.HostCertificate || !rec.HostPrivateKey) {
      throw new Error(`pair record ${flags['pair-record']} lacks HostCertificate or HostPrivateKey`);
    }
    return { cert: Buffer.from(rec.HostCertificate).toString('utf8'), key: Buffer.from(rec.HostPrivateKey).toString('utf8') };
  }
  if (args.length < 5) {
    usageError(USAGE, 'need <certPemFile> <keyPemFile> or --pair-record=<plistFile>');
  }
  return { cert: readFileSync(args[3], 'utf8'), key: readFileSync(args[4], 'utf8') };
}

run(USAGE, 3, async (args, flags) => {
  const [host, port, mtu] = args;
  const creds = credentials(args, flags);
  const requestedMtu = mtuArg((m) => usageError(USAGE, m), mtu);
  const socket = await dialTcp(hostArg(host), portArg(USAGE, port));
  return await cdtunnelHandshake(socket, (f, s) => f.connect(s, creds), requestedMtu);
});
