// rsd-discover.mjs <udid> <host> <port> [--timeout=N]
//
// Drives appium-ios-remotexpc's RSD client, `discoverServices(udid, host, port)`,
// against our RSD endpoint (sim or iosmuxd shim) and prints the service list:
//   [{"serviceName":"com.apple.…","port":"58783"}, …]
// `port` is a STRING (String(Port) of whatever the server sent). The udid is only
// a key for coalescing concurrent calls; it is never sent.
//
// What the client (appium-ios-remotexpc 5.19.0, build/src/lib/remote-xpc/) does,
// i.e. what our server must accept:
//  - TCP connect with net.createConnection({host, port, family: 6}); an IP literal
//    (127.0.0.1, ::1, fe80::1%veth0) is used as is; a host NAME resolves as IPv6
//    only. Connect timeout 3 s.
//  - Waits 100 ms, then writes its whole setup WITHOUT reading anything:
//      1. "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
//      2. SETTINGS (stream 0): MAX_CONCURRENT_STREAMS(3)=100, INITIAL_WINDOW_SIZE(4)=16777216
//      3. WINDOW_UPDATE stream 0, increment 16777216-65535 = 16711681
//      4. HEADERS stream 1, flags END_HEADERS(0x4), EMPTY header block (0 bytes, no HPACK)
//      5. DATA stream 1: XPC wrapper flags=0x00000001 (ALWAYS_SET only, no DATA_PRESENT),
//         msg id 0, body = empty dictionary {}: bodyLen 20 = object magic, version 5,
//         dict type 0xf000, payload length 4, entry count 0 (44 bytes in all)
//      6. HEADERS stream 3, flags END_HEADERS, empty block
//      7. DATA stream 1: XPC wrapper flags=0x00000201, id 0, no body (bodyLen 0)
//      8. DATA stream 3: XPC wrapper flags=0x00400001 (ALWAYS_SET|INIT_HANDSHAKE), id 0, no body
//      9. SETTINGS with ACK flag — sent unconditionally, possibly before our SETTINGS
//         arrive; the server must tolerate an "unsolicited" ACK.
//    No END_STREAM on any frame. The client never ACKs our SETTINGS.
//  - Then it reads. Frames it understands: SETTINGS (applies MAX_FRAME_SIZE and
//    INITIAL_WINDOW_SIZE), WINDOW_UPDATE, DATA (padding ok); RST_STREAM or GOAWAY
//    fail the connection; HEADERS and anything else are ignored. It answers DATA
//    with WINDOW_UPDATE only on EVEN stream ids.
//  - DATA payloads from ANY stream are reassembled into XPC messages (24-byte
//    wrapper: magic 0x29b00b92 LE, flags, u64 bodyLen, u64 msgId; body = object
//    magic 0x42133742 + version 5 + one dictionary; bodyLen ≤ 16 MiB). A message
//    that fails to decode is skipped silently; a bad wrapper magic kills the
//    connection. Decodable XPC types: null, bool, int64, uint64, double, date,
//    data, string, uuid, array, dictionary — anything else (e.g. 0x1a000
//    fileTransfer) anywhere in the body makes the whole message undecodable,
//    hence "No services received".
//  - The first decoded message whose body has a dictionary `Services` with at
//    least one entry whose value is a dictionary settles the call. Only
//    `Services.<name>.Port` is read (any type; stringified, missing -> "").
//    MessageType, Properties, UUID, MessagingProtocolVersion are NOT read.
//  - Must arrive within 10 s after the setup frames (13.1 s overall), else
//    "No services received after handshake" / "Connection timed out".
//  - Then it closes with socket.end() (TCP FIN, no GOAWAY), destroying after 0.5 s.

// harness first: it arms the hard timeout before the peer packages load.
import { run, hostArg, portArg } from './lib/harness.mjs';
import { discoverServices } from 'appium-ios-remotexpc';

const USAGE = 'node rsd-discover.mjs <udid> <host> <port> [--timeout=N]';

run(USAGE, 3, async ([udid, host, port]) => {
  return await discoverServices(udid, hostArg(host), portArg(USAGE, port));
});
