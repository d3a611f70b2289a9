package lockdown

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// EnvSocketAddress is the environment variable libusbmuxd, pymobiledevice3 and go-ios read
// for the usbmuxd address (lockdown.md §1).
const EnvSocketAddress = "USBMUXD_SOCKET_ADDRESS"

// DefaultSocketPath is usbmuxd's Unix socket on Linux and macOS.
const DefaultSocketPath = "/var/run/usbmuxd"

// DefaultWindowsAddress is Apple Mobile Device Service's TCP address on Windows.
const DefaultWindowsAddress = "127.0.0.1:27015"

// ParseSocketAddress turns a usbmuxd address into a network ("unix" or "tcp") and address.
// Accepted forms:
//
//	UNIX:/path, unix:/path, unix:///path   Unix socket (libusbmuxd; iosmux CLI; go-ios)
//	tcp:HOST:PORT, tcp://HOST:PORT         TCP (iosmux CLI; go-ios)
//	HOST:PORT, [V6]:PORT                   TCP (libusbmuxd, pymobiledevice3)
//	/path, ./path, or a name with no colon Unix socket
//
// Anything else with a colon (udp:..., http://..., a URL) is refused rather than taken for a
// socket path or a host name to look up.
// "" is the default: $USBMUXD_SOCKET_ADDRESS if set, else the platform's usbmuxd.
func ParseSocketAddress(s string) (network, address string, err error) {
	if s == "" {
		s = os.Getenv(EnvSocketAddress)
	}
	if s == "" {
		if runtime.GOOS == "windows" {
			return "tcp", DefaultWindowsAddress, nil
		}
		return "unix", DefaultSocketPath, nil
	}
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "unix:"):
		p := s[len("unix:"):]
		if strings.HasPrefix(p, "//") {
			p = p[2:]
		}
		if p == "" {
			return "", "", fmt.Errorf("lockdown: usbmuxd address %q: empty socket path", s)
		}
		return "unix", p, nil
	case strings.HasPrefix(lower, "tcp:"):
		a := strings.TrimPrefix(s[len("tcp:"):], "//")
		if !isHostPort(a) {
			return "", "", fmt.Errorf("lockdown: usbmuxd address %q: want tcp:HOST:PORT", s)
		}
		return "tcp", a, nil
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "."):
		return "unix", s, nil
	case isHostPort(s) && !isScheme(s[:strings.LastIndexByte(s, ':')]):
		return "tcp", s, nil
	case !strings.Contains(s, ":"):
		return "unix", s, nil
	}
	return "", "", fmt.Errorf("lockdown: usbmuxd address %q: want unix:PATH, /PATH, tcp:HOST:PORT or HOST:PORT", s)
}

// isScheme reports whether a HOST:PORT's host is a URL scheme someone typed ("udp:27015").
func isScheme(host string) bool {
	switch strings.ToLower(host) {
	case "udp", "udp4", "udp6", "tcp4", "tcp6", "http", "https", "ws", "wss", "file", "unixgram", "unixpacket":
		return true
	}
	return false
}

// isHostPort reports whether s is HOST:PORT with a non-empty host and a numeric port.
func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}
