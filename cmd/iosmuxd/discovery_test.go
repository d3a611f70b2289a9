package main

// The daemons tests start browse mDNS only where a test names an interface (--mdns-iface).
func init() { discoveryOffByDefault = true }
