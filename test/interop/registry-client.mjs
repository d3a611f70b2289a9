// registry-client.mjs <registry-port> <udid> [--timeout=N]
//
// Drives appium-ios-remotexpc's own tunnel-registry client against iosmuxd, the way
// appium's XCUITest driver finds a tunnel:
//  - writes the registry port into @appium/strongbox (container
//    'appium-xcuitest-driver', item 'tunnelRegistryPort'), as appium's
//    startTunnelRegistryServer does; run it with XDG_DATA_HOME set to a scratch
//    directory so the user's own strongbox is left alone;
//  - getAvailableDevices(): GET /remotexpc/tunnels -> Object.keys(tunnels);
//  - resolveTunnelService(udid, 'com.apple.mobile.lockdown.remote.trusted'):
//    GET /remotexpc/tunnels/<udid>?waitMs=15000, reads entry.services[name].port;
//  - getTunnelForDevice(udid): GET /remotexpc/tunnels/<udid> with the client's
//    500 ms timeout -> {host: address, port: rsdPort, udid};
//  - refreshServiceCatalog(udid): POST /remotexpc/tunnels/<udid>/refresh-services.
// Every client is the strict one: an HTTP error or a missing tunnel throws.
// Prints {"devices":[…],"service":{host,port,udid},"tunnel":{host,port,udid},"refreshed":entry}.

// harness first: it arms the hard timeout before the peer packages load.
import { run, portArg } from './lib/harness.mjs';
import { BaseItem, strongbox } from '@appium/strongbox';
import { TUNNEL_CONTAINER_NAME, getTunnelForDevice, resolveTunnelService } from 'appium-ios-remotexpc';
// Not exported from the package root: imported by file path (peers.md).
import {
  createValidatedStrictRegistryClient,
  getAvailableDevices,
} from './node_modules/appium-ios-remotexpc/build/src/lib/tunnel/tunnel-availability.js';

const USAGE = 'node registry-client.mjs <registry-port> <udid> [--timeout=N]';

run(USAGE, 2, async ([port, udid]) => {
  await new BaseItem('tunnelRegistryPort', strongbox(TUNNEL_CONTAINER_NAME)).write(String(portArg(USAGE, port)));
  const devices = await getAvailableDevices();
  const service = await resolveTunnelService(udid, 'com.apple.mobile.lockdown.remote.trusted');
  const tunnel = await getTunnelForDevice(udid);
  const client = await createValidatedStrictRegistryClient();
  const refreshed = await client.refreshServiceCatalog(udid);
  return { devices, service, tunnel, refreshed };
});
