package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestStaleSimDirsRemoved: the private directory of a --simulate run whose process is gone
// (killed with SIGKILL: its pair records and keys were left behind) is removed when the next
// run starts; a live run's directory and other files are kept.
func TestStaleSimDirsRemoved(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "lockdown"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(p, "lockdown", "X.plist"), []byte("HostPrivateKey"), 0o600)
		return p
	}
	stale := mk(simDirPrefix + strconv.Itoa(dead.Process.Pid) + "-abc")
	live := mk(simDirPrefix + strconv.Itoa(os.Getpid()) + "-def")
	other := mk("iosmux-simulator-notes")
	removeStaleSimDirs(dir)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale run directory kept: %v", err)
	}
	for _, p := range []string{live, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s removed: %v", p, err)
		}
	}
}
