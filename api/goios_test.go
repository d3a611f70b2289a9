package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
)

// tableDaemon is a fake daemon whose Status the test sets; it records Cancel and StartTunnel.
type tableDaemon struct {
	fakeDaemon
	smu     sync.Mutex
	st      Status
	started chan string
}

func newTable(devs ...DeviceStatus) *tableDaemon {
	d := &tableDaemon{fakeDaemon: *newFake(), started: make(chan string, 4)}
	d.st = Status{Version: "test", Devices: devs, Sources: []SourceStatus{{Name: "usbmuxd unix:/x", State: "running"}}}
	return d
}

func (d *tableDaemon) Status() Status {
	d.smu.Lock()
	defer d.smu.Unlock()
	st := d.st
	st.Devices = append([]DeviceStatus(nil), d.st.Devices...)
	return st
}

func (d *tableDaemon) set(f func(*Status)) {
	d.smu.Lock()
	defer d.smu.Unlock()
	f(&d.st)
}

func (d *tableDaemon) StartTunnel(ctx context.Context, udid, ct, ip string) (StartResult, error) {
	d.started <- udid
	return d.fakeDaemon.StartTunnel(ctx, udid, ct, ip)
}

var (
	devA = DeviceStatus{UDID: "00008110-001A2B3C3C01801E", State: "published", ConnectionType: "USB", DeviceID: 3, ProductID: 0x12a8,
		RSDEndpoint: "[fd7b:e5b:6f53::1]:60413", Since: time.UnixMilli(1764000000000)}
	devB = DeviceStatus{UDID: "00008030-000A1B2C3D4E5F01", State: "published", ConnectionType: "USB", DeviceID: 4,
		RSDEndpoint: "127.0.0.1:50123", Since: time.UnixMilli(1764000001000)}
	devOpening = DeviceStatus{UDID: "00008101-0000000000000001", State: "opening: lockdown", DeviceID: 5}
)

// goiosTunnelShape is go-ios's Tunnel type's JSON as its client decodes it
// (go-ios ios/tunnel/tunnel.go at 3ebc297).
type goiosTunnelShape struct {
	Address          string `json:"address"`
	RsdPort          int    `json:"rsdPort"`
	Udid             string `json:"udid"`
	UserspaceTUN     bool   `json:"userspaceTun"`
	UserspaceTUNPort int    `json:"userspaceTunPort"`
}

// TestGoIOSRoutes pins go-ios's tunnel-agent routes byte for byte (tunneld-api.md §5).
func TestGoIOSRoutes(t *testing.T) {
	d := newTable(devB, devA, devOpening)
	h := NewGoIOS(d, nil)
	cases := []struct {
		method, path string
		code         int
		ctype, body  string
	}{
		{"GET", "/health", 200, "", ""},
		{"POST", "/health", 405, "", ""},
		{"GET", "/tunnels", 200, "application/json",
			`[{"address":"127.0.0.1","rsdPort":50123,"udid":"00008030-000A1B2C3D4E5F01","userspaceTun":false,"userspaceTunPort":0},` +
				`{"address":"fd7b:e5b:6f53::1","rsdPort":60413,"udid":"00008110-001A2B3C3C01801E","userspaceTun":false,"userspaceTunPort":0}]` + "\n"},
		{"GET", "/tunnel/00008110-001A2B3C3C01801E", 200, "application/json",
			`{"address":"fd7b:e5b:6f53::1","rsdPort":60413,"udid":"00008110-001A2B3C3C01801E","userspaceTun":false,"userspaceTunPort":0}` + "\n"},
		// go-ios asks with usbmuxd's SerialNumber, which Linux usbmuxd may report without the dash.
		{"GET", "/tunnel/00008110001A2B3C3C01801E", 200, "application/json",
			`{"address":"fd7b:e5b:6f53::1","rsdPort":60413,"udid":"00008110-001A2B3C3C01801E","userspaceTun":false,"userspaceTunPort":0}` + "\n"},
		{"GET", "/tunnel/00008101-0000000000000001", 404, "text/plain; charset=utf-8", "tunnel not found\n"},
		{"GET", "/tunnel/", 400, "text/plain; charset=utf-8", "missing udid\n"},
		{"PUT", "/tunnel/00008110-001A2B3C3C01801E", 405, "", ""},
		{"DELETE", "/tunnel/nope", 404, "text/plain; charset=utf-8", "tunnel not found\n"},
		{"GET", "/nope", 404, "text/plain; charset=utf-8", "404 page not found\n"},
	}
	for _, c := range cases {
		code, hdr, body := do(t, h, c.method, c.path, nil)
		if code != c.code || body != c.body || hdr.Get("Content-Type") != c.ctype {
			t.Errorf("%s %s: %d %q %q\nwant %d %q %q", c.method, c.path, code, hdr.Get("Content-Type"), body, c.code, c.ctype, c.body)
		}
	}
	// Every listed tunnel decodes into go-ios's own type with no field left over or missing.
	_, _, body := do(t, h, "GET", "/tunnels", nil)
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.DisallowUnknownFields()
	var list []goiosTunnelShape
	if err := dec.Decode(&list); err != nil || len(list) != 2 || list[1].RsdPort != 60413 {
		t.Fatalf("go-ios decode: %v %+v", err, list)
	}
	if code, _, _ := do(t, h, "GET", "/tunnels", map[string]string{"Host": "evil.example:60105"}); code != http.StatusForbidden {
		t.Fatalf("foreign Host: %d, want 403", code)
	}
}

// TestGoIOSDeleteRebuilds: DELETE /tunnel/{udid} answers 204, cancels the tunnel and starts
// a new one, as go-ios's manager does on its next pass (RefreshTunnelForDevice relies on it).
func TestGoIOSDeleteRebuilds(t *testing.T) {
	d := newTable(devA)
	code, _, body := do(t, NewGoIOS(d, nil), "DELETE", "/tunnel/00008110001A2B3C3C01801E", nil)
	if code != http.StatusNoContent || body != "" {
		t.Fatalf("DELETE: %d %q", code, body)
	}
	d.mu.Lock()
	cancelled := append([]string(nil), d.cancelled...)
	d.mu.Unlock()
	if len(cancelled) != 1 || cancelled[0] != devA.UDID {
		t.Fatalf("cancelled %v, want %s", cancelled, devA.UDID)
	}
	select {
	case u := <-d.started:
		if u != devA.UDID {
			t.Fatalf("restarted %s", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tunnel not restarted after DELETE")
	}
}

// TestGoIOSReadyAndShutdown: /ready is 503 while a device is still opening, 200 once every
// device has settled, and stays 200; /shutdown answers go-ios's text and stops the daemon.
func TestGoIOSReadyAndShutdown(t *testing.T) {
	d := newTable(devOpening)
	h := NewGoIOS(d, nil)
	if code, _, _ := do(t, h, "GET", "/ready", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("ready while opening: %d", code)
	}
	d.set(func(s *Status) { s.Devices = []DeviceStatus{devA} })
	if code, _, _ := do(t, h, "GET", "/ready", nil); code != http.StatusOK {
		t.Fatalf("ready after publishing: %d", code)
	}
	d.set(func(s *Status) { s.Devices = []DeviceStatus{devOpening} })
	if code, _, _ := do(t, h, "GET", "/ready", nil); code != http.StatusOK {
		t.Fatalf("ready must stay ready: %d", code)
	}
	if code, _, _ := do(t, h, "POST", "/ready", nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /ready: %d", code)
	}
	code, _, body := do(t, h, "GET", "/shutdown", nil)
	if code != 200 || body != "shutting down in 1 second..." {
		t.Fatalf("shutdown: %d %q", code, body)
	}
	select {
	case <-d.shutdown:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not shut down")
	}
}
