// coredevice-info.mjs <udid> <host> <port> [--timeout=N]
//
// Calls a RemoteXPC CoreDevice service end to end with appium-ios-remotexpc's own client,
// CoreDeviceInfoService.getDeviceInfo(): the feature
// `com.apple.coredevice.feature.getdeviceinfo` of `com.apple.coredevice.deviceinfo`.
// The service normally resolves its port through appium's tunnel registry; here the
// address is given: <host> <port> is the deviceinfo service itself (not RSD).
//
// What the client does (appium-ios-remotexpc 5.19.0,
// build/src/services/ios/core-device/core-device-service.js): a fresh connection per
// invocation; the same h2c setup as rsd-discover.mjs; one MSG|WANTS_REPLY (flags 0x10101,
// id 1) on stream 1 with the CoreDevice envelope (CoreDevice.featureIdentifier, .action {},
// .input {}, .invocationIdentifier, .deviceIdentifier, .coreDeviceVersion,
// .CoreDeviceDDIProtocolVersion); it waits for a reply whose body has
// `CoreDevice.output` (else it fails with the reply's CoreDevice.error).
//
// Prints the output dictionary as JSON (bigints as numbers or strings, data as base64).

// harness first: it arms the hard timeout before the peer packages load.
import { run, hostArg, portArg, toJsonSafe } from './lib/harness.mjs';
import { CoreDeviceInfoService } from 'appium-ios-remotexpc';

const USAGE = 'node coredevice-info.mjs <udid> <host> <port> [--timeout=N]';

/** CoreDeviceInfoService reached at a given address instead of through the registry. */
class DirectDeviceInfo extends CoreDeviceInfoService {
  constructor(udid, host, port) {
    super(udid);
    this.address = [host, port];
  }
  async resolveServiceAddress() {
    return this.address;
  }
}

run(USAGE, 3, async ([udid, host, port]) => {
  const svc = new DirectDeviceInfo(udid, hostArg(host), portArg(USAGE, port));
  try {
    return toJsonSafe(await svc.getDeviceInfo());
  } finally {
    await svc.close();
  }
});
