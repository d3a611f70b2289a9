// IOSMuxInject: Foundation-side view of iosmuxd's inject contract (../CONTRACT.md, version 1),
// for code loaded into CoreDeviceService. It answers property and name look-ups for a relayed
// device from the values the device itself sent, through the C client in ../client.
//
// It does NOT hook anything in CoreDeviceService: which CDS methods carry those look-ups has not
// been observed (README.md), so no symbol, selector or offset is named here.
#import <Foundation/Foundation.h>

NS_ASSUME_NONNULL_BEGIN

/// One ready device document: an immutable snapshot of one tunnel generation.
@interface IOSMuxInjectDevice : NSObject
@property(nonatomic, readonly, copy) NSString *udid;
/// lockdown's DeviceName as the device sent it; nil when iosmuxd has none.
@property(nonatomic, readonly, copy, nullable) NSString *name;
/// Changes on every tunnel rebuild; a holder of an older generation must drop what it holds.
@property(nonatomic, readonly) uint64_t generation;
/// The RSD endpoint to connect to (a loopback shim, or the tunnel address).
@property(nonatomic, readonly, copy) NSString *rsdHost;
@property(nonatomic, readonly) uint16_t rsdPort;
@property(nonatomic, readonly, copy) NSUUID *handshakeUUID;
/// The handshake's Properties, values as received (see README.md for the type mapping).
@property(nonatomic, readonly, copy) NSDictionary<NSString *, id> *properties;
/// The handshake's Services as the RSD endpoint serves them (Port values are the endpoint's).
@property(nonatomic, readonly, copy) NSDictionary<NSString *, NSDictionary<NSString *, id> *> *services;
/// Property keys in the order the device sent them.
@property(nonatomic, readonly, copy) NSArray<NSString *> *propertyKeys;

/// The value of one handshake property, or nil if the device did not send it.
- (nullable id)propertyForKey:(NSString *)key;
@end

/// Long-polls iosmuxd for one device and reports every change of generation or readiness.
@interface IOSMuxInjectWatcher : NSObject
/// host/port of iosmuxd's API (127.0.0.1 / 49151 by default).
- (instancetype)initWithHost:(NSString *)host port:(uint16_t)port udid:(NSString *)udid NS_DESIGNATED_INITIALIZER;
- (instancetype)init NS_UNAVAILABLE;
/// Starts polling; handler runs on a private serial queue with the new ready document, or nil
/// when the device is not ready (tunnel down): do not present stale values as live.
- (void)startWithHandler:(void (^)(IOSMuxInjectDevice *_Nullable device))handler;
- (void)stop;
/// The last ready document, or nil.
@property(atomic, readonly, strong, nullable) IOSMuxInjectDevice *current;
@end

/// Reads one device document now (waiting up to wait seconds, at most 60, for readiness).
/// nil with *error set when iosmuxd cannot be reached or the device is unknown or not ready.
FOUNDATION_EXPORT IOSMuxInjectDevice *_Nullable IOSMuxInjectFetch(NSString *host, uint16_t port, NSString *udid,
                                                                  double wait, NSError **error);

NS_ASSUME_NONNULL_END
