package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionPrintsBuildRevision builds iosmuxd with VCS stamping and checks that
// `iosmuxd --version` and `iosmuxd version` print the checkout's commit.
func TestVersionPrintsBuildRevision(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	root, err := exec.Command(gitPath, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	dir := strings.TrimSpace(string(root))
	// The go command stamps only checkouts whose .git is a directory; a `git worktree`
	// (.git is a file) is built from a fresh clone of its HEAD instead.
	if fi, err := os.Stat(filepath.Join(dir, ".git")); err != nil || !fi.IsDir() {
		clone := filepath.Join(t.TempDir(), "src")
		if out, err := exec.Command(gitPath, "clone", "-q", "--no-hardlinks", dir, clone).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v %s", err, out)
		}
		dir = clone
	}
	want, err := exec.Command(gitPath, "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := strings.TrimSpace(string(want))
	bin := filepath.Join(t.TempDir(), "iosmuxd")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/iosmuxd")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v %s", err, out)
	}
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("iosmuxd %s: %v", arg, err)
		}
		if !bytes.Contains(out, []byte("rev "+rev)) {
			t.Fatalf("iosmuxd %s = %q, want revision %s", arg, out, rev)
		}
	}
}

// TestParseBuildInfo checks which build settings make it into the version line.
func TestParseBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-12-02T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	b := parseBuildInfo(bi)
	if got, want := b.String(), "iosmuxd 0.1.0-dev (rev 0123456789abcdef0123456789abcdef01234567, modified, 2026-12-02T10:00:00Z, go1.26.0)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got, want := b.short(), "0.1.0-dev+0123456789ab+dirty"; got != want {
		t.Fatalf("short() = %q, want %q", got, want)
	}
	b = parseBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}})
	if got, want := b.String(), "iosmuxd v0.2.0 (no VCS revision stamped)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
