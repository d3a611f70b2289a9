package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"golang.org/x/sys/unix"
)

// unprivUID is the user the capability tests run the daemon as (Debian's nobody/nogroup).
const unprivUID = "65534"

// capSandbox is a network namespace and a directory the unprivileged daemon can use, with a
// copy of this test binary in it (go test's own build directory is private to root).
type capSandbox struct {
	ns, dir, bin string
	tun          string // a world-usable TUN clone node bound over /dev/net/tun for the daemon, or ""
}

func newCapSandbox(t *testing.T) *capSandbox {
	t.Helper()
	if os.Geteuid() != 0 {
		if peertest.InCI() {
			t.Fatal("CI runs as root: the capability tests must run")
		}
		t.Skip("not root: cannot switch users or make namespaces")
	}
	peertest.Tool(t, "ip")
	peertest.Tool(t, "setpriv")
	peertest.Tool(t, "curl")
	var b [3]byte
	rand.Read(b[:])
	s := &capSandbox{ns: "iosmux-c-" + hex.EncodeToString(b[:])}
	if out, err := exec.Command("ip", "netns", "add", s.ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", s.ns).Run() })
	exec.Command("ip", "-n", s.ns, "link", "set", "lo", "up").Run()
	dir, err := os.MkdirTemp("", "iosmux-cap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	s.bin = filepath.Join(dir, "iosmuxd")
	if err := os.WriteFile(s.bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// On a host with udev /dev/net/tun is 0666; a container may leave it 0600. Give the daemon
	// what udev gives it, in its own mount namespace only (ip netns exec makes one), and leave
	// the machine's node alone.
	if fi, err := os.Stat("/dev/net/tun"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
		s.tun = filepath.Join(dir, "tun")
		if err := syscall.Mknod(s.tun, syscall.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
			t.Fatalf("mknod a TUN clone node: %v", err)
		}
		os.Chmod(s.tun, 0o666)
	}
	return s
}

// command runs iosmuxd in the namespace as the unprivileged user with exactly caps (setpriv
// syntax, e.g. "+net_admin"; "" for none) as its ambient, inheritable and bounding sets.
func (s *capSandbox) command(caps string, args ...string) *exec.Cmd {
	set := "-all"
	if caps != "" {
		set += "," + caps
	}
	argv := []string{"netns", "exec", s.ns}
	if s.tun != "" {
		argv = append(argv, "sh", "-c", `mount --bind "$0" /dev/net/tun && exec "$@"`, s.tun)
	}
	argv = append(append(argv, "setpriv", "--reuid="+unprivUID, "--regid="+unprivUID, "--clear-groups",
		"--inh-caps="+set, "--ambient-caps="+set, "--bounding-set="+set, s.bin), args...)
	cmd := exec.Command("ip", argv...)
	cmd.Env = append(os.Environ(), "IOSMUXD_RUN_MAIN=1", "HOME=/nonexistent")
	return cmd
}

// curl fetches an API path inside the namespace.
func (s *capSandbox) curl(port int, path string) []byte {
	out, _ := exec.Command("ip", "netns", "exec", s.ns, "curl", "-s", "--max-time", "10",
		"http://127.0.0.1:"+strconv.Itoa(port)+path).Output()
	return out
}

// links lists the namespace's interfaces.
func (s *capSandbox) links() string {
	out, _ := exec.Command("ip", "-n", s.ns, "-br", "link").Output()
	return string(out)
}

// TestKernelBackendWithNetAdminOnly runs the daemon as an unprivileged user whose only
// capability is CAP_NET_ADMIN (ambient, as the systemd unit grants it), in a fresh network
// namespace, against a simulated usbmuxd socket: a device gets a kernel TUN, the TUN goes
// when the device is unplugged and comes back when it is plugged in again, and goes when
// the daemon stops.
func TestKernelBackendWithNetAdminOnly(t *testing.T) {
	s := newCapSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u := sim.NewUsbmuxd(ctx, sim.UsbmuxdOptions{})
	defer u.Close()
	sock := filepath.Join(s.dir, "usbmuxd")
	if _, err := u.ListenUnix(sock); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666) // as usbmuxd's own socket is
	state := filepath.Join(s.dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(unprivUID)
	if err := os.Chown(state, uid, uid); err != nil {
		t.Fatal(err)
	}
	d := sim.NewDevice(profile.Default(), "cap", nil)
	u.Plug(d)

	const port = 49151
	cmd := s.command("+net_admin", "--usbmux", "unix:"+sock, "--backend", "kernel", "--state-dir", state,
		"--api", "127.0.0.1:"+strconv.Itoa(port), "--liveness", "1s")
	var logs peertest.LogBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	published := func() (api.DeviceStatus, bool) {
		var st api.Status
		if json.Unmarshal(s.curl(port, api.StatusPath), &st) != nil {
			return api.DeviceStatus{}, false
		}
		for _, dev := range st.Devices {
			if dev.UDID == d.UDID && dev.State == "published" {
				return dev, true
			}
		}
		return api.DeviceStatus{}, false
	}
	var dev api.DeviceStatus
	waitFor(t, "a kernel tunnel for the device", func() bool { var ok bool; dev, ok = published(); return ok })
	if dev.Backend != "kernel" || dev.Interface == "" || !strings.Contains(s.links(), dev.Interface) {
		t.Fatalf("published %+v; links:\n%s", dev, s.links())
	}
	if !strings.HasPrefix(dev.TunnelAddress, "fd") {
		t.Fatalf("tunnel address %q", dev.TunnelAddress)
	}
	// ip netns exec, sh and setpriv exec in place: the pid is now the daemon's.
	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t"+unprivUID+"\t") {
		t.Fatalf("daemon is not running as uid %s:\n%s", unprivUID, status)
	}
	if !strings.Contains(string(status), "\nCapEff:\t0000000000001000\n") {
		t.Fatalf("daemon's effective capabilities are not CAP_NET_ADMIN alone:\n%s", status)
	}

	u.Unplug(d)
	waitFor(t, "the TUN to go with the device", func() bool { return !strings.Contains(s.links(), dev.Interface) })
	u.Plug(d)
	waitFor(t, "a new kernel tunnel after re-plugging", func() bool { var ok bool; dev, ok = published(); return ok })
	if !strings.Contains(s.links(), dev.Interface) {
		t.Fatalf("no TUN %s after re-plugging:\n%s", dev.Interface, s.links())
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("daemon still running after SIGTERM")
	}
	if links := s.links(); strings.Contains(links, dev.Interface) {
		t.Fatalf("TUN %s left behind after the daemon stopped:\n%s", dev.Interface, links)
	}
}

// TestKernelBackendWithoutNetAdmin: the same unprivileged user without CAP_NET_ADMIN is told
// at start-up that the kernel backend needs that capability, and the daemon exits.
func TestKernelBackendWithoutNetAdmin(t *testing.T) {
	s := newCapSandbox(t)
	cmd := s.command("", "--simulate", "--backend", "kernel", "--api", "127.0.0.1:49152")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Fatalf("daemon started without CAP_NET_ADMIN:\n%s", logs.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("daemon without CAP_NET_ADMIN did not exit:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "needs the CAP_NET_ADMIN capability") {
		t.Fatalf("start-up error does not name the missing capability:\n%s", logs.String())
	}
}

// TestKernelBackendWithoutTunAccess: with CAP_NET_ADMIN but a /dev/net/tun it may not open
// (mode 0600, as a host without udev leaves it), the start-up error names the device.
func TestKernelBackendWithoutTunAccess(t *testing.T) {
	s := newCapSandbox(t)
	s.tun = filepath.Join(s.dir, "tun-0600")
	if err := syscall.Mknod(s.tun, syscall.S_IFCHR|0o600, int(unix.Mkdev(10, 200))); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	out, err := s.command("+net_admin", "--simulate", "--backend", "kernel", "--api", "127.0.0.1:49153").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot open /dev/net/tun: open /dev/net/tun: permission denied") {
		t.Fatalf("want a start-up error naming /dev/net/tun, got %v:\n%s", err, out)
	}
}
