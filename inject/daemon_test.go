package inject

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// daemonBin is iosmuxd built once for the package's tests.
var daemonBin struct {
	once sync.Once
	path string
	err  error
}

// buildDaemon builds ./cmd/iosmuxd into a directory removed after the tests.
func buildDaemon(t *testing.T) string {
	t.Helper()
	daemonBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "iosmux-inject-")
		if err != nil {
			daemonBin.err = err
			return
		}
		daemonBin.path = filepath.Join(dir, "iosmuxd")
		cmd := exec.Command("go", "build", "-o", daemonBin.path, "github.com/iosmux/iosmux/cmd/iosmuxd")
		if out, err := cmd.CombinedOutput(); err != nil {
			daemonBin.err = fmt.Errorf("go build iosmuxd: %v\n%s", err, out)
		}
	})
	if daemonBin.err != nil {
		t.Fatal(daemonBin.err)
	}
	return daemonBin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if daemonBin.path != "" {
		os.RemoveAll(filepath.Dir(daemonBin.path))
	}
	os.Exit(code)
}

// daemon is an `iosmuxd --simulate` process serving its API on a loopback port.
type daemon struct {
	URL  string // http://127.0.0.1:PORT
	UDID string // the virtual iPhone's
}

var apiLine = regexp.MustCompile(`api=http://(127\.0\.0\.1:[0-9]+)`)

// startDaemon runs `iosmuxd --simulate` (userspace backend, shims, a private state
// directory) until the test ends, and waits until its one device is listed.
func startDaemon(t *testing.T) *daemon {
	t.Helper()
	bin := buildDaemon(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--simulate", "--backend", "userspace", "--api", "127.0.0.1:0",
		"--state-dir", t.TempDir(), "--liveness", "1s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	d := &daemon{}
	select {
	case a := <-addr:
		d.URL = "http://" + a
	case <-exited:
		t.Fatal("iosmuxd --simulate exited before serving its API")
	case <-time.After(30 * time.Second):
		t.Fatal("iosmuxd --simulate did not log its API address within 30s")
	}
	deadline := time.Now().Add(30 * time.Second)
	for d.UDID == "" {
		var list struct {
			Devices []struct{ UDID string } `json:"devices"`
		}
		d.getJSON(t, "/iosmux/inject/v1/devices", 200, &list)
		if len(list.Devices) > 0 {
			d.UDID = list.Devices[0].UDID
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no device listed within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

// get fetches path and checks the status code; it returns the body.
func (d *daemon) get(t *testing.T, path string, code int) []byte {
	t.Helper()
	c := &http.Client{Timeout: 90 * time.Second}
	resp, err := c.Get(d.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != code {
		t.Fatalf("GET %s: status %d, want %d: %s", path, resp.StatusCode, code, body)
	}
	return body
}

// getJSON fetches path, checks the status code and decodes the body into v.
func (d *daemon) getJSON(t *testing.T, path string, code int, v any) []byte {
	t.Helper()
	body := d.get(t, path, code)
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return body
}

// fetch is GET path for another goroutine: the body of a 200 answer, or an error text that
// no schema accepts.
func (d *daemon) fetch(path string) []byte {
	c := &http.Client{Timeout: 90 * time.Second}
	resp, err := c.Get(d.URL + path)
	if err != nil {
		return []byte(fmt.Sprintf("GET %s: %v", path, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<22))
	if err != nil || resp.StatusCode != 200 {
		return []byte(fmt.Sprintf("GET %s: status %d: %v: %s", path, resp.StatusCode, err, body))
	}
	return body
}
