package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// GoIOSDefaultAddr is go-ios's tunnel-agent address ("60-105 is leetspeak for go-ios";
// tunneld-api.md §5); iosmuxd serves it only when asked (--goios-api).
const GoIOSDefaultAddr = "127.0.0.1:60105"

// goiosRestartTimeout bounds the rebuild that follows DELETE /tunnel/{udid}: go-ios's
// manager recreates a removed tunnel on its next pass, and its client polls for it.
const goiosRestartTimeout = 60 * time.Second

// GoIOSTunnel is go-ios's Tunnel as its agent serves it (go-ios ios/tunnel/tunnel.go); field
// order is go-ios's. iosmuxd's userspace backend is reached through loopback shims, so
// UserspaceTUN is always false: the address and port are directly dialable.
type GoIOSTunnel struct {
	Address          string `json:"address"`
	RsdPort          int    `json:"rsdPort"`
	Udid             string `json:"udid"`
	UserspaceTUN     bool   `json:"userspaceTun"`
	UserspaceTUNPort int    `json:"userspaceTunPort"`
}

// NewGoIOS returns go-ios's tunnel-agent API over d: the routes `ios … --tunnel-info-port`
// reads (tunneld-api.md §5; go-ios ios/tunnel/tunnel_api.go tunnelInfoMux and its client
// functions TunnelInfoForDevice, ListRunningTunnels, StopTunnelForDevice, at 3ebc297).
func NewGoIOS(d Daemon, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &goios{d: d, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", g.health)
	mux.HandleFunc("/ready", g.readyz)
	mux.HandleFunc("/shutdown", g.shutdown)
	mux.HandleFunc("/tunnel/", g.tunnel)
	mux.HandleFunc("/tunnels", g.tunnels)
	return guard(mux, log)
}

type goios struct {
	d     Daemon
	log   *slog.Logger
	ready atomic.Bool
}

func (g *goios) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// readyz is 200 once the first pass is over: every source has run and no device is still
// between seen and published or backoff (go-ios: its first UpdateTunnels finished). It stays
// ready after that, as go-ios's does.
func (g *goios) readyz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !g.ready.Load() && firstPassDone(g.d.Status()) {
		g.ready.Store(true)
	}
	if !g.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// firstPassDone reports whether every source has started and every device has settled.
func firstPassDone(st Status) bool {
	if len(st.Sources) == 0 {
		return false
	}
	for _, s := range st.Sources {
		if s.State == "" {
			return false
		}
	}
	for _, d := range st.Devices {
		if d.State == "seen" || strings.HasPrefix(d.State, "opening") {
			return false
		}
	}
	return true
}

func (g *goios) shutdown(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	g.log.Info("go-ios api: shutdown requested")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("shutting down in 1 second..."))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go g.d.Shutdown()
}

func goiosTunnel(p published) GoIOSTunnel {
	return GoIOSTunnel{Address: p.Host, RsdPort: p.Port, Udid: p.UDID}
}

// writeGoJSON writes v as go-ios does: json.Encoder, so the body ends in a newline.
func writeGoJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Add("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

func (g *goios) tunnels(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	out := []GoIOSTunnel{}
	for _, p := range publishedTunnels(g.d) {
		out = append(out, goiosTunnel(p))
	}
	writeGoJSON(w, out)
}

func (g *goios) tunnel(w http.ResponseWriter, r *http.Request) {
	udid := strings.TrimPrefix(r.URL.Path, "/tunnel/")
	if udid == "" {
		http.Error(w, "missing udid", http.StatusBadRequest)
		return
	}
	switch r.Method {
	case http.MethodGet:
		p, ok := findPublished(g.d, udid)
		if !ok {
			http.Error(w, "tunnel not found", http.StatusNotFound)
			return
		}
		writeGoJSON(w, goiosTunnel(p))
	case http.MethodDelete:
		p, ok := findPublished(g.d, udid)
		if !ok {
			http.Error(w, "tunnel not found", http.StatusNotFound)
			return
		}
		// go-ios removes the tunnel and its manager builds a new one on the next pass.
		g.log.Info("go-ios api: rebuilding tunnel", "udid", p.UDID)
		g.d.Cancel(p.UDID)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), goiosRestartTimeout)
			defer cancel()
			if _, err := g.d.StartTunnel(ctx, p.UDID, "", ""); err != nil {
				g.log.Warn("go-ios api: rebuild failed", "udid", p.UDID, "err", err)
			}
		}()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
