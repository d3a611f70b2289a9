package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
	"howett.net/plist"
)

// packagingDir is the repository's packaging/ directory.
const packagingDir = "../../packaging"

// parseServeArgs checks that args are flags iosmuxd's daemon accepts.
func parseServeArgs(t *testing.T, args []string) *serveFlags {
	t.Helper()
	fs := flag.NewFlagSet("iosmuxd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := newServeFlags(fs)
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		t.Fatalf("iosmuxd rejects the service's arguments %q: %v (left %q)", args, err, fs.Args())
	}
	return f
}

// unitKeys reads a systemd unit's [Service] keys (repeated keys keep every value).
func unitKeys(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q", line)
			}
			keys[section+k] = append(keys[section+k], v)
		}
	}
	return keys
}

// TestSystemdUnit checks the unit's promises (an unprivileged user, CAP_NET_ADMIN alone, a
// state directory, restart on failure, /dev/net/tun and usbmuxd's socket reachable), that its
// ExecStart is a valid iosmuxd command line, and that systemd-analyze verify accepts it.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(packagingDir, "systemd", "iosmuxd.service"))
	if err != nil {
		t.Fatal(err)
	}
	k := unitKeys(t, data)
	want := map[string]string{
		"[Service]DynamicUser":             "yes",
		"[Service]AmbientCapabilities":     "CAP_NET_ADMIN",
		"[Service]CapabilityBoundingSet":   "CAP_NET_ADMIN",
		"[Service]NoNewPrivileges":         "yes",
		"[Service]StateDirectory":          "iosmux",
		"[Service]StateDirectoryMode":      "0700",
		"[Service]Restart":                 "on-failure",
		"[Service]DevicePolicy":            "closed",
		"[Service]DeviceAllow":             "/dev/net/tun rw",
		"[Service]RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"[Install]WantedBy":                "multi-user.target",
	}
	for key, v := range want {
		if got := k[key]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", key, got, v)
		}
	}
	// What would take root back, hide /dev/net/tun, or cut iosmuxd off from usbmuxd's socket.
	for _, key := range []string{"[Service]User", "[Service]PrivateDevices", "[Service]PrivateNetwork",
		"[Service]InaccessiblePaths", "[Service]PrivateUsers", "[Service]IPAddressDeny"} {
		if v, ok := k[key]; ok {
			t.Errorf("%s=%q must not be set", key, v)
		}
	}
	exec0 := k["[Service]ExecStart"]
	if len(exec0) != 1 {
		t.Fatalf("ExecStart %q", exec0)
	}
	argv := strings.Fields(exec0[0])
	if argv[0] != "/usr/local/bin/iosmuxd" {
		t.Fatalf("ExecStart binary %q", argv[0])
	}
	args := argv[1:]
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "${STATE_DIRECTORY}", "/var/lib/iosmux")
	}
	f := parseServeArgs(t, args)
	if f.backend != "kernel" || f.stateDir != "/var/lib/iosmux/lockdown" || f.api != "127.0.0.1:49151" {
		t.Fatalf("service runs backend %q, state %q, api %q", f.backend, f.stateDir, f.api)
	}

	// systemd's own check, with ExecStart pointing at a binary that exists here.
	analyze := peertest.Tool(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "iosmuxd.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/iosmuxd"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// launchdJob is the part of a launchd job the test checks.
type launchdJob struct {
	Label             string
	ProgramArguments  []string
	UserName          string
	GroupName         string
	Umask             int
	RunAtLoad         bool
	KeepAlive         struct{ SuccessfulExit *bool }
	StandardOutPath   string
	StandardErrorPath string
}

// TestLaunchdPlist parses the launch daemon and checks it runs iosmuxd with valid flags as
// an unprivileged user, restarting it when it fails.
func TestLaunchdPlist(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(packagingDir, "launchd", "io.iosmux.iosmuxd.plist"))
	if err != nil {
		t.Fatal(err)
	}
	var job launchdJob
	format, err := plist.Unmarshal(data, &job)
	if err != nil || format != plist.XMLFormat {
		t.Fatalf("plist: format %d, %v", format, err)
	}
	if job.Label != "io.iosmux.iosmuxd" || !job.RunAtLoad {
		t.Fatalf("job %+v", job)
	}
	if job.UserName == "" || job.UserName == "root" || job.Umask != 0o077 {
		t.Fatalf("runs as %q with umask %#o: want an unprivileged user and 077", job.UserName, job.Umask)
	}
	if job.KeepAlive.SuccessfulExit == nil || *job.KeepAlive.SuccessfulExit {
		t.Fatalf("KeepAlive %+v: want a restart after a failed exit only", job.KeepAlive)
	}
	if len(job.ProgramArguments) < 1 || job.ProgramArguments[0] != "/usr/local/bin/iosmuxd" {
		t.Fatalf("ProgramArguments %q", job.ProgramArguments)
	}
	f := parseServeArgs(t, job.ProgramArguments[1:])
	if f.backend != "userspace" || f.stateDir != "/usr/local/var/iosmux/lockdown" || filepath.Dir(job.StandardErrorPath) != filepath.Dir(f.stateDir) {
		t.Fatalf("backend %q (no root: userspace), state %q, log %q", f.backend, f.stateDir, job.StandardErrorPath)
	}
}
