package peertest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InNetNS runs fn on an OS thread that entered the named network namespace and returns its
// error. Sockets fn opens stay in that namespace whichever thread uses them later; the thread
// itself is never reused (it stays locked and exits with its goroutine).
func InNetNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread must not go back to the pool
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

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
