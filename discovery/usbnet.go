package discovery

import "strings"

// USBInterface is a phone's USB network (CDC-NCM) interface.
type USBInterface struct {
	Name string // the netdev, "enx…"
	UDID string // from the USB serial, with its dash restored
}

// USB interface strings of the phone's private network function (spec discovery.md §3.1).
var usbNetInterfaceStrings = []string{"NCM Control", "AppleUSBEthernet"}

// udidFromSerial restores the dash of a 24-character USB serial (00008030001A…) after its
// eighth character; other serials are taken as they are.
func udidFromSerial(s string) string {
	s = strings.TrimSpace(s)
	if len(s) == 24 && !strings.Contains(s, "-") {
		return s[:8] + "-" + s[8:]
	}
	return s
}
