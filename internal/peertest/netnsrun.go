package peertest

import (
	"os/exec"
	"testing"
)

// NetNSCommand is name args… run inside the namespace (ip netns exec).
func NetNSCommand(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// AddIPv4 gives both ends of the link an IPv4 address (CIDR form, as "10.99.0.1/24").
func (l *Link) AddIPv4(t testing.TB, host, peer string) {
	t.Helper()
	for _, args := range [][]string{
		{"addr", "add", host, "dev", l.HostIf},
		{"-n", l.NS, "addr", "add", peer, "dev", l.PeerIf},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
}
