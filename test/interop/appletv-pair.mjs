// appletv-pair.mjs <host> <port> <pin> <mtu> [--no-tunnel=1] [--timeout=N]
//
// appium-ios-remotexpc's Apple TV flow against an RPPairing port, given an explicit
// device record (no mDNS): AppleTVPairingService pairs with <pin> and stores a pair
// record; then AppleTVTunnelService verifies with that record, asks createListener,
// and connects to the listener; appium-ios-tuntap's TunnelForwarder does TLS-PSK and
// the CDTunnel handshake (no TUN). --no-tunnel=1 stops after pairing.
// Prints one JSON line:
//   {"deviceId","pairingFile","fileMode":"0644","hostIdentifier",
//    "record":{"publicKey":hex,"privateKey":hex,"remotePairingUdid","remoteUnlockHostKey"},
//    "tunnel":{"deviceIdentifier","pskLength","clientParameters":{…},"serverAddress","serverRSDPort"}}
// The private key is a throwaway one made for the test; the Go side checks it against the
// public key and runs its own pair-verify with it. The PSK itself is never printed.
//
// What the client does (appium-ios-remotexpc 5.19.0, src/lib/apple-tv/):
// - pairing/pairing-service.ts: with options.devices there is no discovery; the device
//   is picked by the selector ('0' = index 0); it connects TCP to device.ip ?? hostname
//   at device.port.
// - network/network-client.ts: "RPPairing" + BE16 length + compact JSON per message,
//   both ways; one response is read per receiveResponse (a reply it does not expect is
//   taken as the answer, there is no loop over events). Socket timeout and per-response
//   timeout: $APPLETV_TIMEOUT ms (30000).
// - pairing-protocol/pairing-protocol.ts executePairingFlow:
//   1. plain request handshake {hostOptions:{attemptPairVerify:true},wireProtocolVersion:19},
//      sequenceNumber 0; reads one message (content ignored).
//   2. pairingData kind verifyManualPairing, startNewSession true, TLV STATE=1 +
//      PUBLIC_KEY = 32 RANDOM bytes (not a real X25519 key); reads one message (ignored);
//      then sends event pairVerifyFailed {} (no reply expected).
//   3. pairingData kind setupManualPairing, sendingHost os.hostname(), startNewSession
//      true, TLV METHOD=0 STATE=1. The NEXT message must be pairingData carrying M2:
//      an awaitingUserConsent event first fails with "No pairing data received"
//      (the tvOS flow: no consent event, the TV shows the PIN). ERROR in M2 -> "Apple TV
//      rejected request with error N". B must be exactly 384 bytes.
//   4. promptForPIN(), SRP-6a (N 3072, g 5, SHA-512, I "Pair-Setup", P = the PIN);
//      k, u, K = H(PAD(S)) use 384-byte padding, but M1 = H(H(N)^H(g), H(I), s,
//      MINIMAL(A), MINIMAL(B), K): differs from the padded HAP form when A or B has a
//      leading zero byte. M3 = STATE, PUBLIC_KEY (A padded, 255-byte fragments), PROOF.
//      M4 with ERROR -> "SRP authentication failed - wrong PIN". M4's proof is NOT checked.
//   5. M5: HKDF-SHA512(K, Pair-Setup-Encrypt-Salt/Info) key, nonce "PS-Msg05"; inner
//      TLV IDENTIFIER = uppercase UUIDv3(DNS ns, os.hostname()), PUBLIC_KEY (Ed25519 32),
//      SIGNATURE over HKDF(K, Controller-Sign)||id||ltpk, INFO (0x11) = OPACK
//      {altIRK, btAddr, mac, remotePairingSerialNumber, accountID, model, name}.
//   6. M6: decrypted with the same key, nonce "PS-Msg06"; only INFO.remotepairing_udid
//      is used (decrypt/OPACK failures are logged and ignored, then the flow fails with
//      REMOTE_PAIRING_UDID_MISSING on Linux). The device's LTPK and signature are NOT
//      checked or stored.
//   7. storage/pairing-storage.ts saves an XML plist {private_key: data (32-byte
//      Ed25519 seed), public_key: data, remote_unlock_host_key: "", remote_pairing_udid}
//      through @appium/strongbox as item "appletv_pairing_<UDID upper>":
//      $XDG_DATA_HOME/appium-ios-remotexpc-nodejs/strongbox/appletv-pairing-<UDID>,
//      written with fs.writeFile's default mode (0666 & ~umask: 0644 under umask 022;
//      the directory 0755) — a private key readable by every local user.
//      No createRemoteUnlockKey is sent.
// - tunnel/tunnel-service.ts AppleTVTunnelService.startTunnel(undefined, undefined,
//   {devices}): tries EVERY stored appletv record against every given device: new
//   connection; handshake (seq 0); pair-verify V-M1 (real X25519), V-M2 must carry
//   PUBLIC_KEY (its encrypted part is not checked), V-M3 signs x25519pub||hostId||devpub
//   with the record's key (hostId recomputed from os.hostname(), not stored), V-M4 with
//   ERROR fails; then encrypted request createListener {key: base64(X25519 shared
//   secret), peerConnectionsInfo:[{owningPID, owningProcessName:'CoreDeviceService'}],
//   transportProtocolType:'tcp'} with ClientEncrypt-main/ServerEncrypt-main keys and
//   nonce LE64(0)||0000; the response needs createListener.port. It then closes the
//   control connection and connects TCP to device.ip:port. PSK = the shared secret.
//   The tunnel's device identifier is the record's remote_pairing_udid.

// harness first: it arms the hard timeout before the peer packages load.
import { run, usageError, hostArg, portArg, flags } from './lib/harness.mjs';
import { cdtunnelHandshake, mtuArg } from './lib/cdtunnel.mjs';
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { AppleTVPairingService, AppleTVTunnelService } from 'appium-ios-remotexpc';
import { PairingStorage } from './node_modules/appium-ios-remotexpc/build/src/lib/apple-tv/storage/pairing-storage.js';
import { generateHostId } from './node_modules/appium-ios-remotexpc/build/src/lib/apple-tv/utils/uuid-generator.js';

const USAGE = 'node appletv-pair.mjs <host> <port> <pin> <mtu> [--no-tunnel=1] [--timeout=N]';

run(USAGE, 4, async ([host, port, pin, mtu]) => {
  if (!/^[0-9]{4,8}$/.test(pin)) {
    usageError(USAGE, 'pin must be 4 to 8 digits');
  }
  const requestedMtu = mtuArg((m) => usageError(USAGE, m), mtu);
  const ip = hostArg(host);
  const device = {
    name: 'iosmux sim',
    identifier: 'iosmux-sim',
    hostname: ip,
    ip,
    port: portArg(USAGE, port),
    model: 'AppleTV',
    version: '26.0',
  };
  const userInput = {
    promptForPIN: async () => pin,
    promptForInput: async () => '',
  };
  const pairing = new AppleTVPairingService(userInput, { timeout: 15000, discoveryTimeout: 1000, maxRetries: 1 });
  const res = await pairing.discoverAndPair('0', { devices: [device] });
  if (!res.success) {
    const e = res.error || new Error('pairing failed');
    throw new Error(`pairing failed: ${e.code ? e.code + ': ' : ''}${e.message}`, { cause: e });
  }
  const rec = await new PairingStorage({ timeout: 15000, discoveryTimeout: 1000, maxRetries: 1 }).load(res.deviceId);
  if (!rec) {
    throw new Error(`paired, but the stored record for ${res.deviceId} does not load`);
  }
  const out = {
    deviceId: res.deviceId,
    pairingFile: res.pairingFile,
    fileMode: '0' + (statSync(res.pairingFile).mode & 0o777).toString(8),
    hostIdentifier: generateHostId(hostname()),
    record: {
      publicKey: rec.publicKey.toString('hex'),
      privateKey: rec.privateKey.toString('hex'),
      remotePairingUdid: rec.remotePairingUdid ?? null,
      remoteUnlockHostKey: rec.remoteUnlockHostKey,
    },
  };
  if (flags['no-tunnel']) {
    return out;
  }
  const tunnelService = new AppleTVTunnelService();
  let started;
  try {
    started = await tunnelService.startTunnel(undefined, undefined, { devices: [device] });
  } catch (e) {
    throw new Error(`tunnel: ${e.message || e}`, { cause: e });
  } finally {
    tunnelService.disconnect();
  }
  const hs = await cdtunnelHandshake(
    started.tcpSocket,
    (f, s) => f.connectPsk(s, { psk: started.psk, identity: '' }),
    requestedMtu,
  );
  out.tunnel = { deviceIdentifier: started.device.identifier, pskLength: started.psk.length, ...hs };
  return out;
});
