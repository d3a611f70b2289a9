// Package discovery finds iOS devices over multicast DNS (RFC 6762/6763) and advertises
// simulated ones: a browser and a responder for the services of ../shared/spec/discovery.md —
// _remoted._tcp on the phone's USB network interface (the untrusted RSD at a link-local IPv6
// address), _remotepairing._tcp on Wi-Fi (the RPPairing port, matched to a RemotePairing record
// by its auth tag) and _remotepairing-manual-pairing._tcp (devices waiting to be paired).
//
// # Why github.com/miekg/dns
//
// Discovery here is a long-running browser that must know the interface every packet came in
// on (a link-local address is useless without its %zone: fe80::…%enx…), keep records by their
// TTL and notice goodbyes, join and leave interfaces as a phone's USB network interface comes
// and goes, share port 5353 with avahi (SO_REUSEPORT), and bound what a hostile host can make
// it hold. Go's mDNS libraries are built around one-shot lookups on sockets of their own
// (hashicorp/mdns, itself built on miekg/dns, sends a query per call and collects answers until
// a timeout), so iosmux takes only the wire format from github.com/miekg/dns — maintained, the
// codec of most Go DNS software, decoding names as plain labels, so the 33-character
// _remotepairing-manual-pairing._tcp (longer than RFC 6335's 15) works — and keeps the sockets
// (golang.org/x/net/ipv4, ipv6: ff02::fb and 224.0.0.251 per interface, the receiving
// interface of each packet) and the small browser loop (queries with backoff, cache, TTLs)
// itself.
//
// Every packet is hostile: it is read into a MaxPacket buffer, refused before decoding when its
// header claims more than MaxRecords records, and a browser keeps at most MaxServices services
// of each type, MaxPerSource of a type from one sender and MaxAddrs addresses per host; parse failures are logged at most once per RateLogInterval.
//
// # The USB network interface (usbnet_linux.go)
//
// An iPhone exposes its CDC-NCM "private" interface, with the untrusted RSD behind it, only
// after the host switches its USB configuration: libimobiledevice's usbmuxd does so when started
// with USBMUXD_DEFAULT_DEVICE_MODE=3 (Apple vendor control requests 0x45 GET_MODE and 0x52
// SET_MODE, mode 3 = CDC-NCM in wIndex; UNCONFIRMED, see the spec §2). iosmuxd does not claim
// the USB device itself (usbmuxd owns it): it tells the user to start usbmuxd that way (see
// the README), watches for the netdev the kernel's cdc_ncm driver makes, maps it to the phone
// through sysfs (interface string "NCM Control" or "AppleUSBEthernet", the UDID from the USB
// serial), brings it up so the kernel gives it a link-local address, and finds the phone's
// link-local peer with a _remoted._tcp query on it.
package discovery
