// iosmux-inject-probe: prints what the inject layer would answer for a device, so the
// Objective-C side can be tried on a Mac without CoreDeviceService:
//   iosmux-inject-probe UDID [HOST PORT] [KEY...]
#import "IOSMuxInject.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, const char *argv[]) {
    @autoreleasepool {
        if (argc < 2) {
            fprintf(stderr, "usage: %s UDID [HOST PORT] [KEY...]\n", argv[0]);
            return 2;
        }
        NSString *host = @"127.0.0.1";
        uint16_t port = 49151;
        int keys = 2;
        if (argc >= 4) {
            host = [NSString stringWithUTF8String:argv[2]];
            port = (uint16_t)atoi(argv[3]);
            keys = 4;
        }
        NSError *err = nil;
        IOSMuxInjectDevice *d = IOSMuxInjectFetch(host, port, [NSString stringWithUTF8String:argv[1]], 30, &err);
        if (d == nil) {
            fprintf(stderr, "iosmux-inject-probe: %s\n", err.localizedDescription.UTF8String);
            return 1;
        }
        printf("%s\n", d.description.UTF8String);
        printf("name: %s\n", d.name ? d.name.UTF8String : "(none)");
        if (argc <= keys) {
            for (NSString *k in d.propertyKeys) {
                id v = [d propertyForKey:k];
                printf("%s (%s) = %s\n", k.UTF8String, NSStringFromClass([v class]).UTF8String, [v description].UTF8String);
            }
        }
        for (int i = keys; i < argc; i++) {
            id v = [d propertyForKey:[NSString stringWithUTF8String:argv[i]]];
            printf("%s = %s\n", argv[i], v ? [v description].UTF8String : "(absent)");
        }
    }
    return 0;
}
