package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Federation limits: every byte from an upstream is bounded (tunneld-api.md §2.1, §2.7).
const (
	// upstreamTimeout bounds one upstream's GET / (tunneld's own is 2 s).
	upstreamTimeout = 2 * time.Second
	// upstreamMaxBody is the most an upstream's GET / body may carry.
	upstreamMaxBody = 1 << 20
	// upstreamMaxEntries is the most tunnel entries taken from one upstream.
	upstreamMaxEntries = 1024
	// maxUpstreams is how many upstreams may be registered.
	maxUpstreams = 32
	// maxUpstreamURL is the longest upstream URL accepted.
	maxUpstreamURL = 2048
	// upstreamMaxRequest bounds a POST/DELETE /upstream body.
	upstreamMaxRequest = 64 << 10
	// upstreamHopsHeader counts how many iosmuxd upstream fetches led to a request, so that
	// a loop of upstreams (one registered in itself, two in each other) ends.
	upstreamHopsHeader = "X-Iosmux-Upstream-Hops"
	// maxUpstreamHops is the deepest chain of iosmuxd upstreams followed.
	maxUpstreamHops = 2
)

// Options tunes the API.
type Options struct {
	// UpstreamHosts are the hosts, besides loopback ones, whose tunneld APIs POST /upstream
	// may register (--upstream-host): nothing else may make iosmuxd fetch from the network.
	UpstreamHosts []string
	// UpstreamClient fetches upstreams; nil means a client that does not follow redirects or
	// use proxies.
	UpstreamClient *http.Client
}

// upstreams is the set of registered upstream tunneld URLs and their fetching.
type upstreams struct {
	allow  []string
	client *http.Client

	mu   sync.Mutex
	urls map[string]struct{}
}

func newUpstreams(o Options) *upstreams {
	c := o.UpstreamClient
	if c == nil {
		c = &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, ResponseHeaderTimeout: upstreamTimeout},
			// A redirect could lead to a host that is not allowed: never follow one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &upstreams{allow: o.UpstreamHosts, client: c, urls: map[string]struct{}{}}
}

// check says why raw may not be registered, or "" when it may.
func (u *upstreams) check(raw string) string {
	if len(raw) > maxUpstreamURL {
		return fmt.Sprintf("upstream URL longer than %d bytes", maxUpstreamURL)
	}
	p, err := url.Parse(raw)
	if err != nil {
		return "upstream URL: " + err.Error()
	}
	if p.Scheme != "http" || p.Host == "" || p.User != nil {
		return "upstream URL must be http://HOST[:PORT][/PATH] without credentials"
	}
	host := p.Hostname()
	if IsLoopbackHost(host) {
		return ""
	}
	for _, a := range u.allow {
		if strings.EqualFold(a, host) {
			return ""
		}
		if x, err := netip.ParseAddr(a); err == nil {
			if y, err := netip.ParseAddr(host); err == nil && x == y {
				return ""
			}
		}
	}
	return fmt.Sprintf("upstream host %q is not loopback and not allowed by --upstream-host", host)
}

// list is the registered URLs, sorted.
func (u *upstreams) list() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.urls))
	for k := range u.urls {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// errTooManyUpstreams is add's error when maxUpstreams are registered.
var errTooManyUpstreams = fmt.Errorf("too many upstreams (at most %d)", maxUpstreams)

func (u *upstreams) add(raw string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.urls[raw]; !ok && len(u.urls) >= maxUpstreams {
		return errTooManyUpstreams
	}
	u.urls[raw] = struct{}{}
	return nil
}

func (u *upstreams) remove(raw string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.urls, raw)
}

// merge appends every upstream's tunnels to local, fetching them in parallel; an upstream
// that fails, is slow or answers garbage is skipped, as tunneld does. hops is how many
// upstream fetches led to this request. Identical entries are listed once.
func (u *upstreams) merge(ctx context.Context, local map[string][]TunnelEntry, hops int) map[string][]TunnelEntry {
	urls := u.list()
	if len(urls) == 0 || hops >= maxUpstreamHops {
		return local
	}
	got := make([]map[string][]TunnelEntry, len(urls))
	var wg sync.WaitGroup
	for i, raw := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = u.fetch(ctx, raw, hops+1)
		}()
	}
	wg.Wait()
	for _, m := range got {
		udids := make([]string, 0, len(m))
		for udid := range m {
			udids = append(udids, udid)
		}
		slices.Sort(udids)
		for _, udid := range udids {
			for _, e := range m[udid] {
				if !slices.Contains(local[udid], e) {
					local[udid] = append(local[udid], e)
				}
			}
		}
	}
	return local
}

// upstreamEntry is an entry as an upstream sends it; pointers tell a missing key from zero.
type upstreamEntry struct {
	Address   *string `json:"tunnel-address"`
	Port      *int    `json:"tunnel-port"`
	Interface *string `json:"interface"`
}

// fetch reads one upstream's GET /, keeping only well-formed entries (idevice drops a whole
// UDID over one malformed entry, so none may pass through) and at most upstreamMaxEntries of
// them: past the bound it returns those it kept with an error.
func (u *upstreams) fetch(ctx context.Context, raw string, hops int) (map[string][]TunnelEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", raw, err)
	}
	req.Header.Set(upstreamHopsHeader, strconv.Itoa(hops))
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream %s: status %d", raw, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, upstreamMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", raw, err)
	}
	if len(body) > upstreamMaxBody {
		return nil, fmt.Errorf("upstream %s: body larger than %d bytes", raw, upstreamMaxBody)
	}
	var m map[string][]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("upstream %s: %w", raw, err)
	}
	out := map[string][]TunnelEntry{}
	n := 0
	for udid, entries := range m {
		for _, rawEntry := range entries {
			var e upstreamEntry
			if json.Unmarshal(rawEntry, &e) != nil || e.Address == nil || e.Port == nil || e.Interface == nil ||
				*e.Port < 1 || *e.Port > 65535 || udid == "" {
				continue
			}
			if _, err := netip.ParseAddr(*e.Address); err != nil {
				continue
			}
			if n++; n > upstreamMaxEntries {
				return out, fmt.Errorf("upstream %s: more than %d entries", raw, upstreamMaxEntries)
			}
			out[udid] = append(out[udid], TunnelEntry{Address: *e.Address, Port: *e.Port, Interface: *e.Interface})
		}
	}
	return out, nil
}

// hopsOf reads the upstream hop count of an incoming request (0 for clients).
func hopsOf(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get(upstreamHopsHeader))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// upstreamBody reads POST/DELETE /upstream's {"url": "..."}.
func upstreamBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	var body struct {
		URL *string `json:"url"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, upstreamMaxRequest))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, []byte(`{"detail":"Request body too large"}`))
		return "", false
	case err != nil || json.Unmarshal(data, &body) != nil:
		writeJSON(w, http.StatusUnprocessableEntity, []byte(
			`{"detail":[{"type":"json_invalid","loc":["body"],"msg":"JSON decode error","input":{}}]}`))
		return "", false
	case body.URL == nil:
		writeJSON(w, http.StatusUnprocessableEntity, []byte(
			`{"detail":[{"type":"missing","loc":["body","url"],"msg":"Field required","input":{}}]}`))
		return "", false
	}
	return *body.URL, true
}

func (s *server) upstreamList(w http.ResponseWriter, _ *http.Request) {
	body, _ := json.Marshal(s.up.list())
	writeJSON(w, http.StatusOK, body)
}

func (s *server) upstreamAdd(w http.ResponseWriter, r *http.Request) {
	raw, ok := upstreamBody(w, r)
	if !ok {
		return
	}
	if why := s.up.check(raw); why != "" {
		s.log.Warn("api: upstream refused", "url", raw, "why", why)
		body, _ := json.Marshal(map[string]string{"detail": why})
		writeJSON(w, http.StatusForbidden, body)
		return
	}
	if err := s.up.add(raw); err != nil {
		body, _ := json.Marshal(map[string]string{"detail": err.Error()})
		writeJSON(w, http.StatusUnprocessableEntity, body)
		return
	}
	s.log.Info("api: upstream added", "url", raw)
	writeJSON(w, http.StatusOK, pyDumps("operation", "add_upstream", "url", raw, "data", true, "message", "upstream "+raw+" added"))
}

func (s *server) upstreamRemove(w http.ResponseWriter, r *http.Request) {
	raw, ok := upstreamBody(w, r)
	if !ok {
		return
	}
	s.up.remove(raw)
	s.log.Info("api: upstream removed", "url", raw)
	writeJSON(w, http.StatusOK, pyDumps("operation", "remove_upstream", "url", raw, "data", true, "message", "upstream "+raw+" removed"))
}
