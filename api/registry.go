package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/iosmux/iosmux/rsd"
)

// AppiumRegistryPath is appium-ios-remotexpc's tunnel registry base path (tunneld-api.md §6).
const AppiumRegistryPath = "/remotexpc/tunnels"

// Registry bounds (appium lib/tunnel/constants.ts).
const (
	// registryMaxWait is the largest waitMs a client may ask for (MAX_TUNNEL_REGISTRY_WAIT_MS).
	registryMaxWait = 60 * time.Second
	// registryPoll is how often a long-poll looks at the daemon again.
	registryPoll = 100 * time.Millisecond
	// catalogTimeout bounds one RSD handshake that reads a device's service catalog.
	catalogTimeout = 5 * time.Second
	// quickCatalogWait is how long a request without ?waitMs= waits for a catalog being read:
	// appium's clients give the registry 500 ms (TUNNEL_REGISTRY_HTTP_TIMEOUT_MS).
	quickCatalogWait = 250 * time.Millisecond
)

// AppiumTunnel is appium's TunnelRegistryEntry (appium lib/types.ts), in its key order.
type AppiumTunnel struct {
	UDID             string                   `json:"udid"`
	DeviceID         int                      `json:"deviceId"`
	Address          string                   `json:"address"`
	RSDPort          int                      `json:"rsdPort"`
	Services         map[string]AppiumService `json:"services,omitempty"`
	CatalogUpdatedAt int64                    `json:"catalogUpdatedAt,omitempty"`
	ConnectionType   string                   `json:"connectionType"`
	ProductID        int                      `json:"productId"`
	CreatedAt        int64                    `json:"createdAt"`
	LastUpdated      int64                    `json:"lastUpdated"`
}

// AppiumService is one catalog entry; appium keeps the port as a string.
type AppiumService struct {
	Port string `json:"port"`
}

// catalogFunc reads the service catalog (name -> port) of the RSD endpoint at addr.
type catalogFunc func(ctx context.Context, addr string) (map[string]int, error)

// rsdCatalog reads a catalog with one RSD handshake, as appium's discoverServices does.
func rsdCatalog(ctx context.Context, addr string) (map[string]int, error) {
	c, h, err := rsd.Dial(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	c.Close()
	out := make(map[string]int, len(h.Services))
	for _, s := range h.Services {
		out[s.Name] = s.Port
	}
	return out, nil
}

// registry serves appium's tunnel registry (appium lib/tunnel/tunnel-registry-server.ts, 5.19.0)
// over the daemon's published tunnels; the service catalog of each tunnel is read once through
// its RSD endpoint and kept until the tunnel changes.
type registry struct {
	d       Daemon
	log     *slog.Logger
	catalog catalogFunc

	mu    sync.Mutex
	cache map[string]*catalogEntry // by UDID
}

// catalogEntry is one tunnel's catalog and the read in flight, if any.
type catalogEntry struct {
	mu       sync.Mutex
	endpoint string    // RSD endpoint the catalog was read from
	since    time.Time // the tunnel's publication time
	services map[string]AppiumService
	at       time.Time
	loading  chan struct{} // closed when the read in flight ends; nil when none is
	err      error         // the last read's error
}

// current reports whether c holds p's catalog; the caller holds c.mu.
func (c *catalogEntry) current(p published) bool {
	return c.services != nil && c.endpoint == p.RSDEndpoint && c.since.Equal(p.Since)
}

func newRegistry(d Daemon, log *slog.Logger, catalog catalogFunc) *registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &registry{d: d, log: log, catalog: catalog, cache: map[string]*catalogEntry{}}
}

// routes adds the registry's routes to r (they share tunneld's listener: no path overlaps).
func (g *registry) routes(r *mux.Router) {
	s := r.PathPrefix(AppiumRegistryPath).Subrouter()
	s.HandleFunc("", g.list).Methods(http.MethodGet)
	s.HandleFunc("/metadata", g.metadata).Methods(http.MethodGet)
	s.HandleFunc("/device/{id}", g.byDeviceID).Methods(http.MethodGet)
	s.HandleFunc("/{udid}/refresh-services", g.refresh).Methods(http.MethodPost)
	s.HandleFunc("/{udid}", g.byUDID).Methods(http.MethodGet)
	s.HandleFunc("/{udid}", g.readOnly).Methods(http.MethodPut, http.MethodDelete)
	s.PathPrefix("").HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		appiumJSON(w, http.StatusNotFound, map[string]any{"error": "Not found"})
	})
}

// appiumJSON writes appium's sendJSON body: {"status": <reason phrase>, ...payload}, where a
// payload "status" wins.
func appiumJSON(w http.ResponseWriter, code int, payload any) {
	head, err := json.Marshal(map[string]string{"status": http.StatusText(code)})
	body, err2 := json.Marshal(payload)
	if err != nil || err2 != nil || len(body) < 2 || body[0] != '{' {
		writeJSON(w, http.StatusInternalServerError, []byte(`{"status":"Internal Server Error","error":"Internal server error"}`))
		return
	}
	var probe struct {
		Status *string `json:"status"`
	}
	json.Unmarshal(body, &probe)
	if probe.Status != nil || len(body) == 2 {
		if len(body) == 2 {
			body = head
		}
		writeJSON(w, code, body)
		return
	}
	out := append(head[:len(head)-1], ',')
	writeJSON(w, code, append(out, body[1:]...))
}

// jsISO is JavaScript's Date.toISOString format.
const jsISO = "2006-01-02T15:04:05.000Z"

type appiumMetadata struct {
	LastUpdated   string `json:"lastUpdated"`
	TotalTunnels  int    `json:"totalTunnels"`
	ActiveTunnels int    `json:"activeTunnels"`
}

func (g *registry) meta(n int) appiumMetadata {
	return appiumMetadata{LastUpdated: time.Now().UTC().Format(jsISO), TotalTunnels: n, ActiveTunnels: n}
}

// entry is p's registry entry with whatever catalog is cached for it.
func (g *registry) entry(p published) AppiumTunnel {
	e := AppiumTunnel{UDID: p.UDID, DeviceID: p.DeviceID, Address: p.Host, RSDPort: p.Port,
		ConnectionType: p.ConnectionType, ProductID: p.ProductID,
		CreatedAt: p.Since.UnixMilli(), LastUpdated: p.Since.UnixMilli()}
	if e.ConnectionType == "" {
		e.ConnectionType = "USB"
	}
	if c := g.cached(p); c != nil {
		c.mu.Lock()
		if c.current(p) {
			e.Services, e.CatalogUpdatedAt, e.LastUpdated = c.services, c.at.UnixMilli(), c.at.UnixMilli()
		}
		c.mu.Unlock()
	}
	return e
}

func (g *registry) cached(p published) *catalogEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cache[p.UDID]
}

// start begins reading p's catalog, unless a current one is cached (and !force) or a read is
// already in flight; it returns a channel closed when that read ends, or nil. The read runs
// on its own bounded context, not the request's: a client giving up does not waste it.
func (g *registry) start(p published, force bool) <-chan struct{} {
	g.mu.Lock()
	c := g.cache[p.UDID]
	if c == nil {
		c = &catalogEntry{}
		g.cache[p.UDID] = c
	}
	g.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading != nil {
		return c.loading
	}
	if !force && c.current(p) {
		return nil
	}
	done := make(chan struct{})
	c.loading = done
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), catalogTimeout)
		defer cancel()
		cat, err := g.catalog(ctx, p.RSDEndpoint)
		services := make(map[string]AppiumService, len(cat))
		for name, port := range cat {
			services[name] = AppiumService{Port: strconv.Itoa(port)}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.loading, c.err = nil, err
		if err == nil {
			c.endpoint, c.since, c.services, c.at = p.RSDEndpoint, p.Since, services, time.Now()
		}
	}()
	return done
}

// load waits until ctx ends for p's catalog (a fresh read when force is set).
func (g *registry) load(ctx context.Context, p published, force bool) error {
	if done := g.start(p, force); done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("appium registry: reading the service catalog of %s at %s: %w", p.UDID, p.RSDEndpoint, ctx.Err())
		}
	}
	c := g.cached(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil && (force || !c.current(p)) {
		return fmt.Errorf("appium registry: reading the service catalog of %s at %s: %w", p.UDID, p.RSDEndpoint, c.err)
	}
	if !c.current(p) {
		return fmt.Errorf("appium registry: no service catalog for %s at %s yet", p.UDID, p.RSDEndpoint)
	}
	return nil
}

// prune forgets the catalogs of tunnels no longer published.
func (g *registry) prune(live []published) {
	keep := make(map[string]bool, len(live))
	for _, p := range live {
		keep[p.UDID] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for udid := range g.cache {
		if !keep[udid] {
			delete(g.cache, udid)
		}
	}
}

func (g *registry) list(w http.ResponseWriter, r *http.Request) {
	live := publishedTunnels(g.d)
	g.prune(live)
	// The list answers from memory, as appium's own registry does; catalogs not read yet are
	// read in the background (one read per tunnel at a time) and listed once they are in.
	for _, p := range live {
		g.start(p, false)
	}
	tunnels := make(map[string]AppiumTunnel, len(live))
	for _, p := range live {
		tunnels[p.UDID] = g.entry(p)
	}
	appiumJSON(w, http.StatusOK, struct {
		Tunnels  map[string]AppiumTunnel `json:"tunnels"`
		Metadata appiumMetadata          `json:"metadata"`
	}{tunnels, g.meta(len(live))})
}

func (g *registry) metadata(w http.ResponseWriter, _ *http.Request) {
	appiumJSON(w, http.StatusOK, g.meta(len(publishedTunnels(g.d))))
}

func (g *registry) byDeviceID(w http.ResponseWriter, r *http.Request) {
	raw := mux.Vars(r)["id"]
	id, err := strconv.Atoi(raw)
	if err != nil {
		appiumJSON(w, http.StatusBadRequest, map[string]any{"error": "Invalid device ID"})
		return
	}
	for _, p := range publishedTunnels(g.d) {
		if p.DeviceID == id && id != 0 {
			ctx, cancel := context.WithTimeout(r.Context(), quickCatalogWait)
			if err := g.load(ctx, p, false); err != nil {
				g.log.Debug("appium registry: entry without catalog", "err", err)
			}
			cancel()
			appiumJSON(w, http.StatusOK, g.entry(p))
			return
		}
	}
	appiumJSON(w, http.StatusNotFound, map[string]any{"error": fmt.Sprintf("Tunnel not found for device ID: %d", id)})
}

// parseWaitMs reads ?waitMs= as appium does: absent or empty is 0; negative, non-integer or
// above 60000 is invalid.
func parseWaitMs(r *http.Request) (time.Duration, bool) {
	raw := r.URL.Query().Get("waitMs")
	if raw == "" {
		return 0, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 || time.Duration(n)*time.Millisecond > registryMaxWait {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// byUDID answers an entry once its tunnel is published with a catalog, long-polling up to
// waitMs; appium answers only entries whose catalog is non-empty.
func (g *registry) byUDID(w http.ResponseWriter, r *http.Request) {
	udid := mux.Vars(r)["udid"]
	wait, ok := parseWaitMs(r)
	if !ok {
		appiumJSON(w, http.StatusBadRequest, map[string]any{"error": "Invalid waitMs query parameter"})
		return
	}
	if wait < quickCatalogWait {
		wait = quickCatalogWait // a catalog being read may still make it
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		if p, ok := findPublished(g.d, udid); ok {
			err := g.load(ctx, p, false)
			if e := g.entry(p); err == nil && len(e.Services) > 0 {
				appiumJSON(w, http.StatusOK, e)
				return
			} else if err != nil {
				g.log.Debug("appium registry: tunnel not ready", "err", err)
			}
		}
		select {
		case <-time.After(registryPoll):
		case <-ctx.Done():
			if waitMs, _ := parseWaitMs(r); waitMs <= 0 {
				appiumJSON(w, http.StatusNotFound, map[string]any{"error": "Tunnel not found for UDID: " + udid})
			} else {
				appiumJSON(w, http.StatusRequestTimeout, map[string]any{"status": "NOT_READY"})
			}
			return
		}
	}
}

// refresh re-reads a tunnel's catalog (after a developer disk image mount, say).
func (g *registry) refresh(w http.ResponseWriter, r *http.Request) {
	udid := mux.Vars(r)["udid"]
	p, ok := findPublished(g.d, udid)
	if !ok || udid == "metadata" { // a reserved segment, never a UDID
		appiumJSON(w, http.StatusNotFound, map[string]any{"error": "Tunnel not found for UDID: " + udid})
		return
	}
	if err := g.load(r.Context(), p, true); err != nil {
		g.log.Warn("appium registry: refresh-services failed", "err", err)
		appiumJSON(w, http.StatusInternalServerError, map[string]any{"error": "Failed to refresh service catalog"})
		return
	}
	appiumJSON(w, http.StatusOK, g.entry(p))
}

// readOnly refuses writes: iosmuxd's tunnels are its own, not registered by another tool.
func (g *registry) readOnly(w http.ResponseWriter, _ *http.Request) {
	appiumJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "iosmuxd's tunnel registry is read-only: iosmuxd creates the tunnels"})
}
