package inject

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// cflags are the C client's warnings: C99 as written, nothing tolerated.
var cflags = []string{"-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"}

// sanitizers catch memory errors and leaks in the client while the test program runs.
var sanitizers = []string{"-fsanitize=address,undefined", "-fno-sanitize-recover=all"}

// buildClient compiles client/ and its test program with the system C compiler, with the
// sanitizers when the compiler has them.
func buildClient(t *testing.T) string {
	t.Helper()
	cc := peertest.Tool(t, "cc")
	out := filepath.Join(t.TempDir(), "test_client")
	srcs := []string{"client/iosmux_inject.c", "client/test_client.c"}
	args := append(append(append(append([]string{}, cflags...), sanitizers...), "-o", out), srcs...)
	if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Logf("cc without sanitizers (%v: %s)", err, bytes.TrimSpace(msg))
		args = append(append(append([]string{}, cflags...), "-o", out), srcs...)
		if msg, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("cc %s: %v\n%s", strings.Join(args, " "), err, msg)
		}
	}
	return out
}

// TestCClient builds the C client with the system compiler and runs its test program against
// `iosmuxd --simulate`: every route's values against GET / and the status route, the bounds,
// and a long-poll across a tunnel rebuild.
func TestCClient(t *testing.T) {
	bin := buildClient(t)
	d := startDaemon(t)
	host, port, _ := strings.Cut(strings.TrimPrefix(d.URL, "http://"), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, host, port)
	cmd.Env = append(cmd.Environ(), "ASAN_OPTIONS=detect_leaks=1", "UBSAN_OPTIONS=print_stacktrace=1")
	out, err := cmd.CombinedOutput()
	t.Logf("test_client:\n%s", out)
	if err != nil {
		t.Fatalf("test_client: %v", err)
	}
	for _, want := range []string{"ok json reader", "ok values match /iosmux/status", "ok long-poll across a tunnel rebuild", "PASS"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("test_client output lacks %q", want)
		}
	}
}
