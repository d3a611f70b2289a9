package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/internal/peertest"
)

// TestKernelBackendShutdownRemovesTUN runs `iosmuxd --simulate` as root inside a fresh network
// namespace: the kernel backend makes a TUN, GET / lists the device at its tunnel address,
// and /shutdown stops the daemon and removes the TUN.
func TestKernelBackendShutdownRemovesTUN(t *testing.T) {
	if os.Geteuid() != 0 {
		if peertest.InCI() {
			t.Fatal("CI runs as root: the kernel backend must be tested")
		}
		t.Skip("not root")
	}
	peertest.Tool(t, "ip")
	peertest.Tool(t, "curl")
	var b [3]byte
	rand.Read(b[:])
	ns := "iosmux-k-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()

	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "--simulate", "--backend", "kernel", "--liveness", "1s")
	cmd.Env = append(os.Environ(), "IOSMUXD_RUN_MAIN=1")
	logs := &peertest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
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
	curl := func(path string) []byte {
		out, _ := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "--max-time", "10", "http://127.0.0.1:49151"+path).Output()
		return out
	}
	var entry api.TunnelEntry
	waitFor(t, "the device in GET /", func() bool {
		var m map[string][]api.TunnelEntry
		if json.Unmarshal(curl("/"), &m) != nil || len(m) != 1 {
			return false
		}
		for _, e := range m {
			entry = e[0]
		}
		return true
	})
	published := time.Now()
	if !strings.HasPrefix(entry.Address, "fd") {
		t.Fatalf("kernel backend should advertise the tunnel's own address, got %+v", entry)
	}
	links, _ := exec.Command("ip", "-n", ns, "-br", "link").Output()
	if !strings.Contains(string(links), "iosmux") {
		t.Fatalf("no TUN while published: %s", links)
	}
	// The advertised address is kernel-routable: a plain client inside the namespace reaches RSD.
	out, err := peertest.Node(t, 90*time.Second, []string{"ip", "netns", "exec", ns}, "rsd-discover.mjs", "X", entry.Address, strconv.Itoa(entry.Port))
	if err != nil || !bytes.Contains(out, []byte("com.apple.mobile.lockdown.remote.trusted")) {
		t.Fatalf("discoverServices through the kernel TUN: %v %s", err, out)
	}
	// Every client setup order, through the tunnel address itself (no shim in between).
	mx := exec.Command("ip", "netns", "exec", ns, os.Args[0])
	mx.Env = append(os.Environ(), matrixEnv+"="+net.JoinHostPort(entry.Address, strconv.Itoa(entry.Port)))
	if out, err := mx.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("order matrix passed")) {
		t.Fatalf("client-order matrix through the tunnel address: %v\n%s", err, out)
	}
	// The ICMPv6 liveness probe works through the kernel TUN: after a few probes the tunnel was
	// never rebuilt for failed probes (one echo lost right after the TUN came up is tolerated).
	time.Sleep(time.Until(published.Add(4 * time.Second)))
	if strings.Contains(logs.String(), "probes failed") {
		t.Fatal("liveness probes failed through the kernel TUN")
	}
	if !bytes.Contains(curl("/shutdown"), []byte(`"operation": "shutdown"`)) {
		t.Fatal("shutdown route did not answer")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("daemon exit: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("daemon still running after /shutdown")
	}
	links, _ = exec.Command("ip", "-n", ns, "-br", "link").Output()
	if strings.Contains(string(links), "iosmux") {
		t.Fatalf("TUN left behind after shutdown: %s", links)
	}
}
