// usbmux-list.mjs <socketPath> [--timeout=N]
//
// Drives appium-ios-remotexpc's usbmux client against our usbmuxd (sim) on a unix
// socket: createUsbmux({socketPath}) then listDevices(). Prints the device list
// exactly as the client returns it (one JSON line):
//   [{"DeviceID":1,"MessageType":"Attached","Properties":{…,"SerialNumber":"<udid>",…}}, …]
// plist <data> values appear as {"$data":"<base64>"}, <date> as ISO strings.
//
// What the client (appium-ios-remotexpc 5.19.0, build/src/lib/usbmux/) does:
//  - On Linux it connects ONLY to a unix socket path that exists (fs.access); a
//    missing path fails at once with "The usbmuxd socket at '…' does not exist".
//    (host:port / TCP is used only on Windows and WSL1.) 5 s connect timeout.
//  - Each request: 16-byte little-endian header {length = 16 + plist length,
//    version = 1, type = 8 (plist), tag} + an XML plist (not binary), e.g.
//      <dict><key>MessageType</key><string>ListDevices</string>
//            <key>ProgName</key><string>appium-internal</string>
//            <key>ClientVersionString</key><string>appium-internal-1.0.0</string></dict>
//    Tags count from 0 per connection (ListDevices here is tag 0). No
//    LibUSBMuxVersion key, no kLibUSBMuxVersion.
//  - Reply matching is by the header TAG only (reply must echo the request's tag);
//    the reply header's version/type are not checked. The reply payload may be XML
//    or binary ("bplist00") plist. Frames with an unknown tag are dropped.
//  - ListDevices reply must have a truthy `DeviceList` array (else it throws
//    "Unexpected data"). Every entry must have a `Properties` dict: the client reads
//    Properties.SerialNumber (as the UDID) and Properties.ConnectionType ("Network"
//    entries are ordered after USB ones with the same SerialNumber). Nothing else
//    is validated. 5 s reply timeout.
//  - Then it closes the socket (end + destroy).

// harness first: it arms the hard timeout before the peer packages load.
import { run } from './lib/harness.mjs';
import { createUsbmux } from 'appium-ios-remotexpc';

const USAGE = 'node usbmux-list.mjs <socketPath> [--timeout=N]';

run(USAGE, 1, async ([socketPath]) => {
  const usbmux = await createUsbmux({ socketPath });
  try {
    return await usbmux.listDevices();
  } finally {
    await usbmux.close().catch(() => {});
  }
});
