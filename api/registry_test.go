package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
)

// fakeCatalog answers a fixed catalog and counts reads.
type fakeCatalog struct {
	reads atomic.Int32
	fail  atomic.Bool
}

func (f *fakeCatalog) read(_ context.Context, addr string) (map[string]int, error) {
	f.reads.Add(1)
	if f.fail.Load() {
		return nil, errors.New("rsd: dial " + addr + ": refused")
	}
	return map[string]int{"com.apple.mobile.lockdown.remote.trusted": 58783, "com.apple.coredevice.appservice": 58790}, nil
}

func registryHandler(d Daemon, cat catalogFunc) http.Handler {
	r := mux.NewRouter()
	newRegistry(d, nil, cat).routes(r)
	return r
}

var isoRE = regexp.MustCompile(`"lastUpdated":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

// TestAppiumRegistryRoutes pins appium's registry routes and bodies (tunneld-api.md §6,
// appium lib/tunnel/tunnel-registry-server.ts): {status, ...payload}, entries keyed by UDID,
// services ports as strings, only entries with a catalog served by UDID.
func TestAppiumRegistryRoutes(t *testing.T) {
	d := newTable(devA, devOpening)
	cat := &fakeCatalog{}
	h := registryHandler(d, cat.read)
	entryA := `{"udid":"00008110-001A2B3C3C01801E","deviceId":3,"address":"fd7b:e5b:6f53::1","rsdPort":60413,` +
		`"services":{"com.apple.coredevice.appservice":{"port":"58790"},"com.apple.mobile.lockdown.remote.trusted":{"port":"58783"}},` +
		`"catalogUpdatedAt":T,"connectionType":"USB","productId":4776,"createdAt":1764000000000,"lastUpdated":T}`
	stamp := regexp.MustCompile(`"(catalogUpdatedAt|lastUpdated)":\d{13}`)
	norm := func(s string) string {
		s = isoRE.ReplaceAllString(s, `"lastUpdated":"ISO"`)
		return stamp.ReplaceAllString(s, `"$1":T`)
	}
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		// The first request reads the catalog (the list answers from memory, as appium's does).
		{"GET", "/remotexpc/tunnels/00008110-001A2B3C3C01801E?waitMs=10000", 200, `{"status":"OK",` + entryA[1:]},
		{"GET", "/remotexpc/tunnels", 200, `{"status":"OK","tunnels":{"00008110-001A2B3C3C01801E":` + entryA + `},"metadata":{"lastUpdated":"ISO","totalTunnels":1,"activeTunnels":1}}`},
		{"GET", "/remotexpc/tunnels/metadata", 200, `{"status":"OK","lastUpdated":"ISO","totalTunnels":1,"activeTunnels":1}`},
		{"GET", "/remotexpc/tunnels/00008110-001A2B3C3C01801E", 200, `{"status":"OK",` + entryA[1:]},
		{"GET", "/remotexpc/tunnels/00008110001A2B3C3C01801E?waitMs=", 200, `{"status":"OK",` + entryA[1:]},
		{"GET", "/remotexpc/tunnels/device/3", 200, `{"status":"OK",` + entryA[1:]},
		{"GET", "/remotexpc/tunnels/device/9", 404, `{"status":"Not Found","error":"Tunnel not found for device ID: 9"}`},
		{"GET", "/remotexpc/tunnels/device/x", 400, `{"status":"Bad Request","error":"Invalid device ID"}`},
		{"GET", "/remotexpc/tunnels/00008101-0000000000000001", 404, `{"status":"Not Found","error":"Tunnel not found for UDID: 00008101-0000000000000001"}`},
		{"GET", "/remotexpc/tunnels/X?waitMs=-1", 400, `{"status":"Bad Request","error":"Invalid waitMs query parameter"}`},
		{"GET", "/remotexpc/tunnels/X?waitMs=1.5", 400, `{"status":"Bad Request","error":"Invalid waitMs query parameter"}`},
		{"GET", "/remotexpc/tunnels/X?waitMs=60001", 400, `{"status":"Bad Request","error":"Invalid waitMs query parameter"}`},
		{"GET", "/remotexpc/tunnels/X?waitMs=150", 408, `{"status":"NOT_READY"}`},
		{"POST", "/remotexpc/tunnels/00008110-001A2B3C3C01801E/refresh-services", 200, `{"status":"OK",` + entryA[1:]},
		{"POST", "/remotexpc/tunnels/X/refresh-services", 404, `{"status":"Not Found","error":"Tunnel not found for UDID: X"}`},
		{"POST", "/remotexpc/tunnels/metadata/refresh-services", 404, `{"status":"Not Found","error":"Tunnel not found for UDID: metadata"}`},
		{"PUT", "/remotexpc/tunnels/00008110-001A2B3C3C01801E", 405, `{"status":"Method Not Allowed","error":"iosmuxd's tunnel registry is read-only: iosmuxd creates the tunnels"}`},
		{"GET", "/remotexpc/tunnels/a/b/c", 404, `{"status":"Not Found","error":"Not found"}`},
	}
	for _, c := range cases {
		code, hdr, body := do(t, h, c.method, c.path, nil)
		if code != c.code || norm(body) != c.body || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q %s\nwant %d %s", c.method, c.path, code, hdr.Get("Content-Type"), body, c.code, c.body)
		}
	}
	// One read served every GET; refresh-services read again.
	if n := cat.reads.Load(); n != 2 {
		t.Fatalf("catalog read %d times, want 2 (cached once, refreshed once)", n)
	}
}

// TestAppiumRegistryWaitsForTunnel: a long-poll returns the entry as soon as the tunnel is
// published; a tunnel whose catalog cannot be read is listed without services but is not served
// by UDID, and refresh-services then answers 500.
func TestAppiumRegistryWaitsForTunnel(t *testing.T) {
	d := newTable(devOpening)
	cat := &fakeCatalog{}
	h := registryHandler(d, cat.read)
	go func() {
		time.Sleep(300 * time.Millisecond)
		d.set(func(s *Status) { s.Devices = []DeviceStatus{devA} })
	}()
	code, _, body := do(t, h, "GET", "/remotexpc/tunnels/"+devA.UDID+"?waitMs=30000", nil)
	if code != 200 || !strings.Contains(body, `"rsdPort":60413`) {
		t.Fatalf("long-poll: %d %s", code, body)
	}
	d.set(func(s *Status) {
		b := devB
		b.Since = time.Now()
		s.Devices = []DeviceStatus{b}
	})
	cat.fail.Store(true)
	_, _, body = do(t, h, "GET", "/remotexpc/tunnels", nil)
	var reg struct {
		Tunnels map[string]map[string]any `json:"tunnels"`
	}
	if err := json.Unmarshal([]byte(body), &reg); err != nil || len(reg.Tunnels) != 1 {
		t.Fatalf("list: %v %s", err, body)
	}
	if _, ok := reg.Tunnels[devB.UDID]["services"]; ok {
		t.Fatalf("listed a catalog that could not be read: %s", body)
	}
	if code, _, _ := do(t, h, "GET", "/remotexpc/tunnels/"+devB.UDID, nil); code != 404 {
		t.Fatalf("entry without catalog served: %d", code)
	}
	if code, _, body := do(t, h, "POST", "/remotexpc/tunnels/"+devB.UDID+"/refresh-services", nil); code != 500 ||
		body != `{"status":"Internal Server Error","error":"Failed to refresh service catalog"}` {
		t.Fatalf("refresh failure: %d %s", code, body)
	}
}

// TestAppiumRegistryOnTunneldListener: the registry answers on tunneld's handler, behind its guard.
func TestAppiumRegistryOnTunneldListener(t *testing.T) {
	h := New(newTable(), nil)
	if code, _, body := do(t, h, "GET", "/remotexpc/tunnels/metadata", nil); code != 200 || !strings.Contains(body, `"totalTunnels":0`) {
		t.Fatalf("metadata: %d %s", code, body)
	}
	if code, _, _ := do(t, h, "GET", "/remotexpc/tunnels", map[string]string{"Host": "evil.example"}); code != http.StatusForbidden {
		t.Fatalf("foreign Host: %d", code)
	}
}

// TestAppiumRegistryStuckCatalog: a device whose RSD endpoint never answers does not hold up
// the list (appium's clients wait 500 ms): the others are listed with their catalogs, it is
// listed without one.
func TestAppiumRegistryStuckCatalog(t *testing.T) {
	d := newTable(devA, devB)
	cat := &fakeCatalog{}
	stuck := func(ctx context.Context, addr string) (map[string]int, error) {
		if addr == devB.RSDEndpoint {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return cat.read(ctx, addr)
	}
	h := registryHandler(d, stuck)
	if code, _, _ := do(t, h, "GET", "/remotexpc/tunnels/"+devA.UDID+"?waitMs=10000", nil); code != 200 {
		t.Fatalf("A: %d", code)
	}
	_, _, body := do(t, h, "GET", "/remotexpc/tunnels", nil)
	var reg struct {
		Tunnels map[string]AppiumTunnel `json:"tunnels"`
	}
	if err := json.Unmarshal([]byte(body), &reg); err != nil || len(reg.Tunnels) != 2 {
		t.Fatalf("list: %v %s", err, body)
	}
	if len(reg.Tunnels[devA.UDID].Services) != 2 || reg.Tunnels[devB.UDID].Services != nil {
		t.Fatalf("catalogs: A %v, B %v; want A's two services and none for the stuck B",
			reg.Tunnels[devA.UDID].Services, reg.Tunnels[devB.UDID].Services)
	}
}
