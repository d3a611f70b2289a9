package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// doBody is do with a request body.
func doBody(t *testing.T, h http.Handler, method, target, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = "127.0.0.1:49151"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestUpstreamRoutes pins GET/POST/DELETE /upstream (tunneld-api.md §2.7) and the refusals:
// hosts that are neither loopback nor allowed, bad bodies, too many upstreams.
func TestUpstreamRoutes(t *testing.T) {
	h := NewWithOptions(newFake(), nil, Options{UpstreamHosts: []string{"farm-2.lan", "10.0.0.2"}})
	steps := []struct {
		method, body string
		code         int
		want         string
	}{
		{"GET", "", 200, `[]`},
		{"POST", `{"url": "http://127.0.0.1:49152/"}`, 200, `{"operation": "add_upstream", "url": "http://127.0.0.1:49152/", "data": true, "message": "upstream http://127.0.0.1:49152/ added"}`},
		{"POST", `{"url": "http://10.0.0.2:49151/"}`, 200, `{"operation": "add_upstream", "url": "http://10.0.0.2:49151/", "data": true, "message": "upstream http://10.0.0.2:49151/ added"}`},
		{"POST", `{"url": "http://FARM-2.lan:49151"}`, 200, `{"operation": "add_upstream", "url": "http://FARM-2.lan:49151", "data": true, "message": "upstream http://FARM-2.lan:49151 added"}`},
		{"GET", "", 200, `["http://10.0.0.2:49151/","http://127.0.0.1:49152/","http://FARM-2.lan:49151"]`},
		{"DELETE", `{"url": "http://10.0.0.2:49151/"}`, 200, `{"operation": "remove_upstream", "url": "http://10.0.0.2:49151/", "data": true, "message": "upstream http://10.0.0.2:49151/ removed"}`},
		{"GET", "", 200, `["http://127.0.0.1:49152/","http://FARM-2.lan:49151"]`},
		{"POST", `{"url": "http://169.254.169.254/latest/meta-data"}`, 403, `{"detail":"upstream host \"169.254.169.254\" is not loopback and not allowed by --upstream-host"}`},
		{"POST", `{"url": "http://evil.example/"}`, 403, `{"detail":"upstream host \"evil.example\" is not loopback and not allowed by --upstream-host"}`},
		{"POST", `{"url": "file:///etc/passwd"}`, 403, `{"detail":"upstream URL must be http://HOST[:PORT][/PATH] without credentials"}`},
		{"POST", `{"url": "http://user:pw@127.0.0.1/"}`, 403, `{"detail":"upstream URL must be http://HOST[:PORT][/PATH] without credentials"}`},
		{"POST", `{"url": "http://127.0.0.1/` + strings.Repeat("a", maxUpstreamURL) + `"}`, 403, fmt.Sprintf(`{"detail":"upstream URL longer than %d bytes"}`, maxUpstreamURL)},
		{"POST", `{"nope": 1}`, 422, `{"detail":[{"type":"missing","loc":["body","url"],"msg":"Field required","input":{}}]}`},
		{"POST", `not json`, 422, `{"detail":[{"type":"json_invalid","loc":["body"],"msg":"JSON decode error","input":{}}]}`},
		{"POST", `{"url": "` + strings.Repeat("a", upstreamMaxRequest) + `"}`, 413, `{"detail":"Request body too large"}`},
		{"PUT", `{}`, 405, `{"detail":"Method Not Allowed"}`},
	}
	for _, s := range steps {
		code, body := doBody(t, h, s.method, "/upstream", s.body)
		if code != s.code || body != s.want {
			t.Errorf("%s /upstream %.60s: %d %s\nwant %d %s", s.method, s.body, code, body, s.code, s.want)
		}
	}
	for i := range maxUpstreams {
		doBody(t, h, "POST", "/upstream", fmt.Sprintf(`{"url": "http://127.0.0.1:%d/"}`, 20000+i))
	}
	code, body := doBody(t, h, "POST", "/upstream", `{"url": "http://127.0.0.1:1/"}`)
	if code != 422 || !strings.Contains(body, "too many upstreams") {
		t.Fatalf("upstream %d: %d %s", maxUpstreams+1, code, body)
	}
	_, body = doBody(t, h, "GET", "/upstream", "")
	var list []string
	if json.Unmarshal([]byte(body), &list) != nil || len(list) != maxUpstreams {
		t.Fatalf("%d upstreams registered, want the bound %d", len(list), maxUpstreams)
	}
}

// TestUpstreamMerge registers upstreams that answer well, with garbage, too much, a redirect,
// or an error, and checks GET / lists the local tunnels plus only the well-formed upstream
// entries, each with the upstream's own address.
func TestUpstreamMerge(t *testing.T) {
	serve := func(f http.HandlerFunc) string {
		s := httptest.NewServer(f)
		t.Cleanup(s.Close)
		return s.URL + "/"
	}
	var goodHits atomic.Int32
	good := serve(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		if r.URL.Path != "/" || r.Header.Get(upstreamHopsHeader) != "1" {
			http.Error(w, "bad request", 400)
			return
		}
		w.Write([]byte(`{"00008101-000A1B2C3D4E5F01":[{"tunnel-address":"fd00:aaaa::1","tunnel-port":50001,"interface":"usbmux-00008101-000A1B2C3D4E5F01-Network"}],` +
			`"00008120-0000000000000002":[` +
			`{"tunnel-address":"fd00:bbbb::1","tunnel-port":"50002","interface":"x"},` + // port as a string
			`{"tunnel-address":"fd00:bbbb::1","interface":"x"},` + // no port
			`{"tunnel-address":"not an ip","tunnel-port":50002,"interface":"x"},` +
			`{"tunnel-address":"fd00:bbbb::1","tunnel-port":70000,"interface":"x"},` +
			`{"tunnel-address":"fd00:bbbb::1","tunnel-port":50002,"interface":"usbmux-2"}]}`))
	})
	huge := serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"X":[`))
		entry := []byte(`{"tunnel-address":"fd00::9","tunnel-port":1,"interface":"huge"},`)
		w.Write(bytes.Repeat(entry, upstreamMaxBody/len(entry)+1))
		w.Write([]byte(`{"tunnel-address":"fd00::9","tunnel-port":1,"interface":"huge"}]}`))
	})
	garbage := serve(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`<html>`)) })
	failing := serve(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) })
	redirect := serve(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, good, http.StatusFound) })
	// Never answers: GET / still returns, after the per-upstream bound.
	stalled := serve(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

	f := newFake()
	h := New(f, nil)
	for _, u := range []string{good, huge, garbage, failing, redirect, stalled, "http://127.0.0.1:1/"} {
		if code, body := doBody(t, h, "POST", "/upstream", `{"url": "`+u+`"}`); code != 200 {
			t.Fatalf("add %s: %d %s", u, code, body)
		}
	}
	code, body := doBody(t, h, "GET", "/", "")
	want := `{"00008101-000A1B2C3D4E5F01":[{"tunnel-address":"fd7b:e5b:6f53::1","tunnel-port":60413,"interface":"usbmux-00008101-000A1B2C3D4E5F01-USB"},` +
		`{"tunnel-address":"fd00:aaaa::1","tunnel-port":50001,"interface":"usbmux-00008101-000A1B2C3D4E5F01-Network"}],` +
		`"00008120-0000000000000002":[{"tunnel-address":"fd00:bbbb::1","tunnel-port":50002,"interface":"usbmux-2"}]}`
	if code != 200 || body != want {
		t.Fatalf("GET / with upstreams:\n%s\nwant\n%s", body, want)
	}
	if n := goodHits.Load(); n != 1 {
		t.Fatalf("the good upstream was fetched %d times, want 1 (a redirect to it must not be followed)", n)
	}
	// The daemon's own entries were not changed by the merge.
	if n := len(f.Tunnels()["00008101-000A1B2C3D4E5F01"]); n != 1 {
		t.Fatalf("daemon table grew to %d entries", n)
	}
}

// TestUpstreamLoopEnds registers an API in itself: GET / ends, listing its tunnel once.
func TestUpstreamLoopEnds(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(New(f, nil))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/upstream", strings.NewReader(`{"url": "`+srv.URL+`/"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("add self: %v %v", resp, err)
	}
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string][]TunnelEntry
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m["00008101-000A1B2C3D4E5F01"]) != 1 {
		t.Fatalf("GET / through a self-loop: %v %v", m, err)
	}
}

// TestUpstreamEntryBound: an upstream listing more than upstreamMaxEntries tunnels contributes
// only the first upstreamMaxEntries of them.
func TestUpstreamEntryBound(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		b.WriteString(`{"U":[`)
		for i := range upstreamMaxEntries + 100 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"tunnel-address":"fd00::%x","tunnel-port":1,"interface":"i"}`, i+1)
		}
		b.WriteString(`]}`)
		w.Write([]byte(b.String()))
	}))
	defer srv.Close()
	f := newFake()
	f.tunnels = nil
	h := New(f, nil)
	if code, body := doBody(t, h, "POST", "/upstream", `{"url": "`+srv.URL+`/"}`); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	_, body := doBody(t, h, "GET", "/", "")
	var m map[string][]TunnelEntry
	if err := json.Unmarshal([]byte(body), &m); err != nil || len(m["U"]) != upstreamMaxEntries {
		t.Fatalf("%d entries merged (%v), want the bound %d", len(m["U"]), err, upstreamMaxEntries)
	}
}
