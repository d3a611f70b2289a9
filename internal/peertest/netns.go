package peertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Link is a veth pair between the test's namespace and a fresh network namespace.
type Link struct {
	NS      string // the namespace's name
	HostIf  string // veth end in the test's namespace, address HostIP
	PeerIf  string // veth end inside NS, address PeerIP
	HostIP  string // fe80::1
	PeerIP  string // fe80::2
	Cleanup func()
}

// NetNSLink creates a namespace joined by a veth pair with static link-local IPv6 addresses,
// removed when the test ends. It skips the test when not root (a CI run is root).
func NetNSLink(t testing.TB) *Link {
	t.Helper()
	if os.Geteuid() != 0 {
		if InCI() {
			t.Fatal("network namespace tests need root in CI")
		}
		t.Skip("not root: network namespaces unavailable")
	}
	Tool(t, "ip")
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &Link{NS: "iosmux-" + id, HostIf: "imx" + id + "h", PeerIf: "imx" + id + "p", HostIP: "fe80::1", PeerIP: "fe80::2"}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", l.NS)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", l.HostIf).Run()
		exec.Command("ip", "netns", "del", l.NS).Run()
	})
	run("link", "add", l.HostIf, "type", "veth", "peer", "name", l.PeerIf)
	run("link", "set", l.PeerIf, "netns", l.NS)
	run("-6", "addr", "add", l.HostIP+"/64", "dev", l.HostIf, "nodad")
	run("link", "set", l.HostIf, "up")
	run("-n", l.NS, "-6", "addr", "add", l.PeerIP+"/64", "dev", l.PeerIf, "nodad")
	run("-n", l.NS, "link", "set", l.PeerIf, "up")
	run("-n", l.NS, "link", "set", "lo", "up")
	return l
}
