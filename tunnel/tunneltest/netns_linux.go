package tunneltest

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips the test when not root, and fails it under CI (CI runs as root).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("kernel TUN tests need root in CI")
	}
	t.Skip("not root: kernel TUN and network namespaces unavailable")
}

// InNetNS runs f on an OS thread moved into a new, empty network namespace and returns f's
// error. Everything f creates there — TUN devices, netlink and ordinary sockets — belongs to
// that namespace; descriptors opened before (such as the transport to a simulated device)
// keep working. f must dial and listen from its own goroutine (the locked thread); other
// goroutines may use what it created. The thread is never unlocked, so it exits with f, and
// the namespace disappears once the descriptors in it are closed: nothing to clean up.
func InNetNS(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
