// usbmux-pairrecord.mjs <socketPath> <udid> [--timeout=N]
//
// Drives appium-ios-remotexpc's usbmux client against our usbmuxd (sim):
// readBUID(), then readPairRecord(udid), on ONE connection (tags 0 and 1).
// Prints (one JSON line; no private key material, ever):
//   {"buid":"<BUID>",
//    "pairRecord": null                       // no PairRecordData in the reply
//      | {"keys":[…keys whose value is non-null…],
//         "HostID":"…","SystemBUID":"…","WiFiMACAddress":"…"|null,
//         "certificates":{"HostCertificate":{"subject":"…","fingerprint256":"…"}|{"error":"…"},
//                         "DeviceCertificate":…,"RootCertificate":…},
//         "hostKeyMatchesCertificate":true|false|null,
//         "rootKeyMatchesCertificate":true|false|null,
//         "escrowBagBytes":N|null}}
//
// What the client (appium-ios-remotexpc 5.19.0, build/src/lib/usbmux/ and
// lib/pair-record/) sends and expects (framing as in usbmux-list.mjs):
//  - ReadBUID (tag 0): {MessageType:"ReadBUID", ProgName:"appium-internal",
//    ClientVersionString:"appium-internal-1.0.0"}. Reply must have a truthy
//    `BUID` (string), else "Unexpected data".
//  - ReadPairRecord (tag 1): {MessageType:"ReadPairRecord", PairRecordID:<udid>,
//    ProgName, ClientVersionString}. If the reply has no `PairRecordData` the
//    client returns null (so a {MessageType:"Result",Number:2} "no record" reply
//    gives null, not an error). PairRecordData must be plist <data> holding an XML
//    or binary plist. From it the client takes HostID, SystemBUID, WiFiMACAddress
//    as is, EscrowBag (data) as base64, and HostCertificate, HostPrivateKey,
//    DeviceCertificate, RootCertificate, RootPrivateKey as <data> whose bytes are
//    PEM text (it does utf8 decode, no DER conversion). Every other key is dropped.
//    The returned object always has those 9 keys; absent ones are null — so
//    "keys" below lists the NON-null ones.
//  - The CoreDeviceProxy TLS (tuntap-handshake.mjs) uses HostCertificate +
//    HostPrivateKey from this record as its client certificate.

// harness first: it arms the hard timeout before the peer packages load.
import { run } from './lib/harness.mjs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createUsbmux } from 'appium-ios-remotexpc';

const USAGE = 'node usbmux-pairrecord.mjs <socketPath> <udid> [--timeout=N]';

function describeCert(pem) {
  if (!pem) {
    return null;
  }
  try {
    const c = new X509Certificate(pem);
    return { subject: c.subject, fingerprint256: c.fingerprint256 };
  } catch (e) {
    return { error: String(e.message || e) };
  }
}

function keyMatches(certPem, keyPem) {
  if (!certPem || !keyPem) {
    return null;
  }
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

run(USAGE, 2, async ([socketPath, udid]) => {
  const usbmux = await createUsbmux({ socketPath });
  try {
    const buid = await usbmux.readBUID();
    const rec = await usbmux.readPairRecord(udid);
    if (!rec) {
      return { buid, pairRecord: null };
    }
    return {
      buid,
      pairRecord: {
        keys: Object.keys(rec).filter((k) => rec[k] !== null && rec[k] !== undefined),
        HostID: rec.HostID,
        SystemBUID: rec.SystemBUID,
        WiFiMACAddress: rec.WiFiMACAddress,
        certificates: {
          HostCertificate: describeCert(rec.HostCertificate),
          DeviceCertificate: describeCert(rec.DeviceCertificate),
          RootCertificate: describeCert(rec.RootCertificate),
        },
        hostKeyMatchesCertificate: keyMatches(rec.HostCertificate, rec.HostPrivateKey),
        rootKeyMatchesCertificate: keyMatches(rec.RootCertificate, rec.RootPrivateKey),
        escrowBagBytes: rec.EscrowBag ? Buffer.from(rec.EscrowBag, 'base64').length : null,
      },
    };
  } finally {
    await usbmux.close().catch(() => {});
  }
});
