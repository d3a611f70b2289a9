// IOSMuxInject: see IOSMuxInject.h and README.md. Built with ARC (-fobjc-arc) on macOS only.
#import "IOSMuxInject.h"

#import <os/log.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../client/iosmux_inject.h"

@interface IOSMuxInjectDevice ()
- (instancetype)initWithDevice:(const iosmux_device *)d;
@end

@interface IOSMuxInjectWatcher ()
@property(atomic, readwrite, strong, nullable) IOSMuxInjectDevice *current;
@end

static NSString *const IOSMuxInjectErrorDomain = @"IOSMuxInject";

static os_log_t IOSMuxLog(void) {
    static os_log_t log;
    static dispatch_once_t once;
    dispatch_once(&once, ^{
      log = os_log_create("iosmux.inject", "client");
    });
    return log;
}

static NSString *StringOf(const iosmux_json *v) {
    if (v == NULL || v->type != IOSMUX_JSON_STRING) return nil;
    return [[NSString alloc] initWithBytes:v->str length:v->str_len encoding:NSUTF8StringEncoding];
}

// ObjectFromTyped converts one typed XPC value (CONTRACT.md section 3) to Foundation:
// null → NSNull, bool/int64/uint64/double → NSNumber (of that C type), date → NSDate,
// data → NSData, string → NSString, uuid → NSUUID, array → NSArray, dictionary → NSDictionary.
// fileTransfer and opaque values have no Foundation form and come back nil (left out).
static id ObjectFromTyped(const iosmux_json *typed) {
    const char *type = iosmux_xpc_type(typed);
    const iosmux_json *value = iosmux_xpc_value(typed);
    if (type == NULL) return nil;
    if (strcmp(type, "null") == 0) return [NSNull null];
    if (strcmp(type, "bool") == 0) return value && value->type == IOSMUX_JSON_BOOL ? (value->boolean ? @YES : @NO) : nil;
    if (strcmp(type, "int64") == 0 || strcmp(type, "date") == 0) {
        int64_t n;
        if (iosmux_json_int64(value, &n) != 0) return nil;
        if (type[0] == 'd') return [NSDate dateWithTimeIntervalSince1970:(NSTimeInterval)n / 1e9];
        return [NSNumber numberWithLongLong:n];
    }
    if (strcmp(type, "uint64") == 0) {
        uint64_t n;
        return iosmux_json_uint64(value, &n) == 0 ? [NSNumber numberWithUnsignedLongLong:n] : nil;
    }
    if (strcmp(type, "double") == 0) {
        if (value == NULL) return nil;
        if (value->type == IOSMUX_JSON_NUMBER) return [NSNumber numberWithDouble:strtod(value->str, NULL)];
        NSString *s = StringOf(value);
        if ([s isEqualToString:@"NaN"]) return [NSNumber numberWithDouble:NAN];
        if ([s isEqualToString:@"+Inf"]) return [NSNumber numberWithDouble:INFINITY];
        if ([s isEqualToString:@"-Inf"]) return [NSNumber numberWithDouble:-INFINITY];
        return nil;
    }
    if (strcmp(type, "data") == 0) {
        NSString *s = StringOf(value);
        return s ? [[NSData alloc] initWithBase64EncodedString:s options:0] : nil;
    }
    if (strcmp(type, "string") == 0) return StringOf(value);
    if (strcmp(type, "uuid") == 0) {
        NSString *s = StringOf(value);
        return s ? [[NSUUID alloc] initWithUUIDString:s] : nil;
    }
    if (strcmp(type, "array") == 0) {
        if (value == NULL || value->type != IOSMUX_JSON_ARRAY) return nil;
        NSMutableArray *a = [NSMutableArray arrayWithCapacity:value->count];
        for (size_t i = 0; i < value->count; i++) {
            id o = ObjectFromTyped(value->items[i]);
            if (o != nil) [a addObject:o];
        }
        return [a copy];
    }
    if (strcmp(type, "dictionary") == 0) {
        if (value == NULL || value->type != IOSMUX_JSON_OBJECT) return nil;
        NSMutableDictionary *d = [NSMutableDictionary dictionaryWithCapacity:value->count];
        for (size_t i = 0; i < value->count; i++) {
            id o = ObjectFromTyped(value->items[i]);
            NSString *k = [NSString stringWithUTF8String:value->keys[i]];
            if (o != nil && k != nil) d[k] = o;
        }
        return [d copy];
    }
    return nil;
}

@implementation IOSMuxInjectDevice

- (instancetype)initWithDevice:(const iosmux_device *)d {
    if ((self = [super init]) == nil) return nil;
    _udid = [NSString stringWithUTF8String:d->udid] ?: @"";
    _name = d->name ? [NSString stringWithUTF8String:d->name] : nil;
    _generation = d->generation;
    _rsdHost = [NSString stringWithUTF8String:d->rsd_host] ?: @"";
    _rsdPort = (uint16_t)d->rsd_port;
    NSString *uuid = StringOf(iosmux_json_get(d->handshake, "uuid"));
    _handshakeUUID = (uuid ? [[NSUUID alloc] initWithUUIDString:uuid] : nil) ?: [[NSUUID alloc] initWithUUIDBytes:(const unsigned char[16]){0}];
    id props = ObjectFromTyped(d->properties);
    _properties = [props isKindOfClass:[NSDictionary class]] ? props : @{};
    id services = ObjectFromTyped(d->services);
    _services = [services isKindOfClass:[NSDictionary class]] ? services : @{};
    NSMutableArray *keys = [NSMutableArray array];
    const iosmux_json *pv = iosmux_xpc_value(d->properties);
    for (size_t i = 0; pv != NULL && pv->type == IOSMUX_JSON_OBJECT && i < pv->count; i++) {
        NSString *k = [NSString stringWithUTF8String:pv->keys[i]];
        if (k != nil) [keys addObject:k];
    }
    _propertyKeys = [keys copy];
    return self;
}

- (id)propertyForKey:(NSString *)key {
    return self.properties[key];
}

- (NSString *)description {
    return [NSString stringWithFormat:@"<IOSMuxInjectDevice %@ \"%@\" generation %llu rsd %@:%u, %lu properties, %lu services>",
                                      self.udid, self.name ?: @"", (unsigned long long)self.generation, self.rsdHost,
                                      self.rsdPort, (unsigned long)self.properties.count, (unsigned long)self.services.count];
}

@end

static NSError *MakeError(NSInteger code, const char *msg) {
    return [NSError errorWithDomain:IOSMuxInjectErrorDomain
                               code:code
                           userInfo:@{NSLocalizedDescriptionKey : [NSString stringWithUTF8String:msg] ?: @"iosmux inject error"}];
}

IOSMuxInjectDevice *IOSMuxInjectFetch(NSString *host, uint16_t port, NSString *udid, double wait, NSError **error) {
    iosmux_client c = {host.UTF8String, port};
    iosmux_device d;
    char err[512] = "";
    int status = 0;
    if (iosmux_device_get(&c, udid.UTF8String, wait, 0, &d, &status, err, sizeof err) != 0) {
        if (error) *error = MakeError(status, err);
        return nil;
    }
    IOSMuxInjectDevice *dev = d.ready ? [[IOSMuxInjectDevice alloc] initWithDevice:&d] : nil;
    iosmux_device_free(&d);
    if (dev == nil && error) *error = MakeError(0, "device not ready");
    return dev;
}

@implementation IOSMuxInjectWatcher {
    NSString *_host;
    uint16_t _port;
    NSString *_udid;
    dispatch_queue_t _queue;
    volatile int _stopped;
}

@synthesize current = _current;

- (instancetype)initWithHost:(NSString *)host port:(uint16_t)port udid:(NSString *)udid {
    if ((self = [super init]) == nil) return nil;
    _host = [host copy];
    _port = port;
    _udid = [udid copy];
    _queue = dispatch_queue_create("iosmux.inject.watcher", DISPATCH_QUEUE_SERIAL);
    return self;
}

- (IOSMuxInjectDevice *)current {
    @synchronized(self) {
        return _current;
    }
}

- (void)setCurrent:(IOSMuxInjectDevice *)device {
    @synchronized(self) {
        _current = device;
    }
}

- (void)stop {
    _stopped = 1;
}

// The loop runs on its own thread (each long-poll blocks for up to 30 s) and calls handler on
// the serial queue. Errors back off for a second; every wait is bounded by the client.
- (void)startWithHandler:(void (^)(IOSMuxInjectDevice *))handler {
    _stopped = 0;
    NSString *host = _host, *udid = _udid;
    uint16_t port = _port;
    dispatch_queue_t queue = _queue;
    __weak IOSMuxInjectWatcher *weakSelf = self;
    [NSThread detachNewThreadWithBlock:^{
      uint64_t held = 0;
      BOOL reportedDown = NO;
      iosmux_client c = {host.UTF8String, port};
      for (;;) {
          IOSMuxInjectWatcher *me = weakSelf;
          if (me == nil || me->_stopped) return;
          me = nil;
          iosmux_device d;
          char err[512] = "";
          if (iosmux_device_get(&c, udid.UTF8String, 30, held, &d, NULL, err, sizeof err) != 0) {
              os_log_error(IOSMuxLog(), "inject: %{public}s", err);
              [NSThread sleepForTimeInterval:1];
              continue;
          }
          if (d.ready && d.generation != held) {
              IOSMuxInjectDevice *dev = [[IOSMuxInjectDevice alloc] initWithDevice:&d];
              held = d.generation;
              reportedDown = NO;
              weakSelf.current = dev;
              os_log(IOSMuxLog(), "inject: %{public}@", dev.description);
              dispatch_async(queue, ^{
                handler(dev);
              });
          } else if (!d.ready && !reportedDown) {
              held = 0; // wait for any ready generation next
              reportedDown = YES;
              weakSelf.current = nil;
              os_log(IOSMuxLog(), "inject: %{public}s is not ready (%{public}s)", d.udid, d.state);
              dispatch_async(queue, ^{
                handler(nil);
              });
          }
          iosmux_device_free(&d);
      }
    }];
}

@end
