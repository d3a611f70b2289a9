// Load-time start for the dylib: when IOSMUX_INJECT_UDID is set in the process's environment,
// a watcher follows that device and logs each generation (subsystem "iosmux.inject"). It hooks
// nothing: no CoreDeviceService method that carries property or name look-ups has been observed
// (README.md), so none is named here. IOSMUX_INJECT_API=HOST:PORT overrides 127.0.0.1:49151.
#import "IOSMuxInject.h"

#include <stdlib.h>

IOSMuxInjectWatcher *IOSMuxInjectSharedWatcher;

__attribute__((constructor)) static void IOSMuxInjectLoad(void) {
    const char *udid = getenv("IOSMUX_INJECT_UDID");
    if (udid == NULL || udid[0] == '\0') return;
    NSString *host = @"127.0.0.1";
    uint16_t port = 49151;
    const char *api = getenv("IOSMUX_INJECT_API");
    if (api != NULL) {
        NSString *s = [NSString stringWithUTF8String:api];
        NSRange colon = [s rangeOfString:@":" options:NSBackwardsSearch];
        if (colon.location != NSNotFound) {
            host = [s substringToIndex:colon.location];
            port = (uint16_t)[[s substringFromIndex:colon.location + 1] intValue];
        }
    }
    IOSMuxInjectSharedWatcher = [[IOSMuxInjectWatcher alloc] initWithHost:host
                                                                     port:port
                                                                     udid:[NSString stringWithUTF8String:udid]];
    [IOSMuxInjectSharedWatcher startWithHandler:^(IOSMuxInjectDevice *device) {
      (void)device; // the watcher logs; a hook, once observed, would read IOSMuxInjectSharedWatcher.current
    }];
}
