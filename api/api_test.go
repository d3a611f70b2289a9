package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeDaemon struct {
	mu        sync.Mutex
	tunnels   map[string][]TunnelEntry
	cancelled []string
	cleared   int
	shutdown  chan struct{}
	startErr  error
}

func newFake() *fakeDaemon {
	return &fakeDaemon{shutdown: make(chan struct{}, 1), tunnels: map[string][]TunnelEntry{
		"00008101-000A1B2C3D4E5F01": {{Address: "fd7b:e5b:6f53::1", Port: 60413, Interface: "usbmux-00008101-000A1B2C3D4E5F01-USB"}},
	}}
}

func (f *fakeDaemon) Tunnels() map[string][]TunnelEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tunnels
}
func (f *fakeDaemon) Status() Status {
	return Status{Version: "test", Devices: []DeviceStatus{{UDID: "x", State: "published"}}}
}
func (f *fakeDaemon) StartTunnel(_ context.Context, udid, _, _ string) (StartResult, error) {
	if f.startErr != nil {
		return StartResult{}, f.startErr
	}
	return StartResult{Interface: "utun5", Port: 60413, Address: "fd7b:e5b:6f53::1"}, nil
}
func (f *fakeDaemon) Cancel(udid string) {
	f.mu.Lock()
	f.cancelled = append(f.cancelled, udid)
	f.mu.Unlock()
}
func (f *fakeDaemon) ClearTunnels() { f.mu.Lock(); f.cleared++; f.mu.Unlock() }
func (f *fakeDaemon) Shutdown()     { f.shutdown <- struct{}{} }

func do(t *testing.T, h http.Handler, method, target string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.Host = "127.0.0.1:49151"
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Result().Header, string(body)
}

func TestTunneldRoutes(t *testing.T) {
	f := newFake()
	h := New(f, nil)
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/", 200, `{"00008101-000A1B2C3D4E5F01":[{"tunnel-address":"fd7b:e5b:6f53::1","tunnel-port":60413,"interface":"usbmux-00008101-000A1B2C3D4E5F01-USB"}]}`},
		{"GET", "/hello", 200, `{"message": "Hello, I'm alive"}`},
		{"GET", "/clear_tunnels", 200, `{"operation": "clear_tunnels", "data": true, "message": "Cleared tunnels..."}`},
		{"GET", "/cancel?udid=ABC", 200, `{"operation": "cancel", "udid": "ABC", "data": true, "message": "tunnel ABC Canceled ..."}`},
		{"GET", "/cancel", 422, `{"detail":[{"type":"missing","loc":["query","udid"],"msg":"Field required","input":null}]}`},
		{"GET", "/start-tunnel?udid=ABC", 200, `{"interface": "utun5", "port": 60413, "address": "fd7b:e5b:6f53::1"}`},
		{"GET", "/nope", 404, `{"detail":"Not Found"}`},
		{"POST", "/hello", 405, `{"detail":"Method Not Allowed"}`},
	}
	for _, c := range cases {
		code, hdr, body := do(t, h, c.method, c.path, nil)
		if code != c.code || body != c.body {
			t.Errorf("%s %s: %d %s\nwant %d %s", c.method, c.path, code, body, c.code, c.body)
		}
		if hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: content-type %q", c.method, c.path, hdr.Get("Content-Type"))
		}
	}
	if len(f.cancelled) != 1 || f.cancelled[0] != "ABC" || f.cleared != 1 {
		t.Fatalf("daemon calls: cancelled %v cleared %d", f.cancelled, f.cleared)
	}
	f.startErr = errors.New("no device")
	code, hdr, body := do(t, h, "GET", "/start-tunnel?udid=ABC", nil)
	if code != 404 || hdr.Get("Content-Type") != "" || body != `{"error": "something went wrong during tunnel creation"}` {
		t.Fatalf("start-tunnel failure: %d %q %s", code, hdr.Get("Content-Type"), body)
	}
	f.startErr = fmt.Errorf("daemon: %w", ErrNoDevice)
	code, hdr, body = do(t, h, "GET", "/start-tunnel?udid=ABC", nil)
	if code != 501 || hdr.Get("Content-Type") != "" || body != `{"error": "task not created"}` {
		t.Fatalf("start-tunnel unknown device: %d %q %s", code, hdr.Get("Content-Type"), body)
	}
	code, _, body = do(t, h, "GET", StatusPath, nil)
	if code != 200 || !strings.Contains(body, `"state": "published"`) {
		t.Fatalf("status: %d %s", code, body)
	}
}

func TestEmptyListIsObject(t *testing.T) {
	f := newFake()
	f.tunnels = nil
	if _, _, body := do(t, New(f, nil), "GET", "/", nil); body != "{}" {
		t.Fatalf("empty list %q", body)
	}
}

// TestRefusesForeignRequests: a non-loopback Host (DNS rebinding) and cross-site browser
// requests get 403 and change nothing.
func TestRefusesForeignRequests(t *testing.T) {
	f := newFake()
	h := New(f, nil)
	bad := []map[string]string{
		{"Host": "evil.example:49151"},
		{"Host": "192.168.1.10:49151"},
		{"Host": "127.0.0.1:49151.evil.com"},
		{"Origin": "http://evil.example"},
		{"Origin": "http://localhost:3000"},
		{"Origin": "null"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
	}
	for _, hdr := range bad {
		for _, path := range []string{"/shutdown", "/cancel?udid=X", "/clear_tunnels", "/start-tunnel?udid=X", "/"} {
			if code, _, _ := do(t, h, "GET", path, hdr); code != http.StatusForbidden {
				t.Errorf("%v %s: %d, want 403", hdr, path, code)
			}
		}
	}
	select {
	case <-f.shutdown:
		t.Fatal("a refused request shut the daemon down")
	default:
	}
	if len(f.cancelled) != 0 || f.cleared != 0 {
		t.Fatalf("refused requests changed state: %v %d", f.cancelled, f.cleared)
	}
	for _, hdr := range []map[string]string{
		{"Host": "localhost:49151"}, {"Host": "[::1]:49151"}, {"Origin": "http://127.0.0.1:49151"},
		{"Sec-Fetch-Site": "none"},
	} {
		if code, _, _ := do(t, h, "GET", "/hello", hdr); code != 200 {
			t.Errorf("%v: %d, want 200", hdr, code)
		}
	}
	if code, _, _ := do(t, h, "GET", "/shutdown", nil); code != 200 {
		t.Fatalf("shutdown %d", code)
	}
	<-f.shutdown
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, a := range []string{"0.0.0.0:0", "[::]:0", "example.com:0"} {
		if ln, err := Listen(a); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", a)
		}
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestIsLoopbackHostParsesStrictly(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.1:49151": true, "localhost": true, "LOCALHOST:1": true,
		"[::1]": true, "[::1]:49151": true, "::1": true, "127.1.2.3:80": true,
		"127.0.0.1:49151.evil.com": false, "127.0.0.1:http": false, "127.0.0.1:": false,
		"127.0.0.1:0": false, "127.0.0.1:65536": false, "127.0.0.1:+80": false,
		"localhost:80.evil.com": false, "[::1]:x": false, "[::1": false, "::1]": false,
		"127.0.0.1.evil.com": false, "evil.com:49151": false, "": false, "[]:80": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestServerClosesIdleConnsPastTheCap: idle connections past MaxConns are closed oldest
// first, and a client that then asks gets its answer.
func TestServerClosesIdleConnsPastTheCap(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(New(newFake(), nil), nil)
	go srv.Serve(ln)
	defer srv.Close()
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 2 * MaxConns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Every one of the first MaxConns is closed by the server (read returns EOF).
	for i, c := range idle[:MaxConns] {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
			t.Fatalf("idle connection %d still open past the cap: %v", i, err)
		}
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + ln.Addr().String() + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
