// Package peertest runs third-party peers (npm scripts, Debian tools) against iosmux in tests.
package peertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI, where a missing peer is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") != "" }

// Missing fails the test in CI and skips it elsewhere.
func Missing(t testing.TB, format string, a ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, a...)
	if InCI() {
		t.Fatalf("peer missing (CI requires it; run .ci/install-peers.sh): %s", msg)
	}
	t.Skipf("peer missing (run .ci/install-peers.sh): %s", msg)
}

// InteropDir is the npm project with the peer scripts.
func InteropDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "test", "interop")
}

// Node runs an interop script with a timeout and returns its stdout; prefix runs it under
// another command (such as "ip netns exec NAME").
func Node(t testing.TB, timeout time.Duration, prefix []string, script string, args ...string) ([]byte, error) {
	t.Helper()
	dir := InteropDir()
	if _, err := exec.LookPath("node"); err != nil {
		Missing(t, "node: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "appium-ios-remotexpc")); err != nil {
		Missing(t, "npm peers in %s: %v", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append(append([]string{}, prefix...), "node", filepath.Join(dir, script)), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v\nstderr:\n%s", script, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Tool finds a command-line peer or reports it missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s: %v", name, err)
	}
	return p
}
