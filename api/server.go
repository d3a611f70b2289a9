package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/iosmux/iosmux/internal/lograte"
)

// StatusPath is iosmux's own status route.
const StatusPath = "/iosmux/status"

// startTunnelTimeout bounds /start-tunnel; tunneld waits forever, iosmux does not.
const startTunnelTimeout = 60 * time.Second

// New returns the API handler for d.
func New(d Daemon, log *slog.Logger) http.Handler { return NewWithOptions(d, log, Options{}) }

// NewWithOptions returns the API handler for d, tuned by o.
func NewWithOptions(d Daemon, log *slog.Logger, o Options) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{d: d, log: log, up: newUpstreams(o)}
	r := mux.NewRouter()
	r.HandleFunc("/", s.list).Methods(http.MethodGet)
	r.HandleFunc("/hello", s.hello).Methods(http.MethodGet)
	r.HandleFunc("/shutdown", s.shutdown).Methods(http.MethodGet)
	r.HandleFunc("/clear_tunnels", s.clear).Methods(http.MethodGet)
	r.HandleFunc("/cancel", s.cancel).Methods(http.MethodGet)
	r.HandleFunc("/start-tunnel", s.startTunnel).Methods(http.MethodGet)
	r.HandleFunc(StatusPath, s.status).Methods(http.MethodGet)
	s.addInjectRoutes(r)                                              // inject.go
	r.HandleFunc("/upstream", s.upstreamList).Methods(http.MethodGet) // upstream.go
	r.HandleFunc("/upstream", s.upstreamAdd).Methods(http.MethodPost)
	r.HandleFunc("/upstream", s.upstreamRemove).Methods(http.MethodDelete)
	newRegistry(d, log, rsdCatalog).routes(r) // appium's tunnel registry (registry.go)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, []byte(`{"detail":"Not Found"}`))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, []byte(`{"detail":"Method Not Allowed"}`))
	})
	return guard(r, log)
}

type server struct {
	d   Daemon
	log *slog.Logger
	up  *upstreams
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
}

// writeBare writes a body with no content type, as tunneld's /start-tunnel errors do.
func writeBare(w http.ResponseWriter, code int, body []byte) {
	w.Header()["Content-Type"] = nil
	w.WriteHeader(code)
	w.Write(body)
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	t := map[string][]TunnelEntry{}
	for udid, e := range s.d.Tunnels() {
		t[udid] = append([]TunnelEntry(nil), e...) // the merge appends: never to the daemon's slices
	}
	t = s.up.merge(r.Context(), t, hopsOf(r))
	body, err := json.Marshal(t)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *server) hello(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, pyDumps("message", "Hello, I'm alive"))
}

func (s *server) shutdown(w http.ResponseWriter, _ *http.Request) {
	s.log.Info("api: shutdown requested")
	writeJSON(w, http.StatusOK, pyDumps("operation", "shutdown", "data", true, "message", "Server shutting down..."))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	go s.d.Shutdown()
}

func (s *server) clear(w http.ResponseWriter, _ *http.Request) {
	s.d.ClearTunnels()
	writeJSON(w, http.StatusOK, pyDumps("operation", "clear_tunnels", "data", true, "message", "Cleared tunnels..."))
}

// missingQuery answers 422 as FastAPI does for a missing required query parameter.
func missingQuery(w http.ResponseWriter, name string) {
	writeJSON(w, http.StatusUnprocessableEntity, []byte(
		`{"detail":[{"type":"missing","loc":["query","`+name+`"],"msg":"Field required","input":null}]}`))
}

func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	udid, ok := r.URL.Query()["udid"]
	if !ok {
		missingQuery(w, "udid")
		return
	}
	s.d.Cancel(udid[0])
	writeJSON(w, http.StatusOK, pyDumps("operation", "cancel", "udid", udid[0], "data", true,
		"message", fmt.Sprintf("tunnel %s Canceled ...", udid[0])))
}

func (s *server) startTunnel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	udid, ok := q["udid"]
	if !ok {
		missingQuery(w, "udid")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), startTunnelTimeout)
	defer cancel()
	res, err := s.d.StartTunnel(ctx, udid[0], q.Get("connection_type"), q.Get("ip"))
	switch {
	case errors.Is(err, ErrNoDevice):
		writeBare(w, http.StatusNotImplemented, pyDumps("error", "task not created"))
		return
	case err != nil:
		s.log.Warn("api: start-tunnel failed", "udid", udid[0], "err", err)
		writeBare(w, http.StatusNotFound, pyDumps("error", "something went wrong during tunnel creation"))
		return
	}
	writeJSON(w, http.StatusOK, pyDumps("interface", res.Interface, "port", res.Port, "address", res.Address))
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	body, err := json.MarshalIndent(s.d.Status(), "", "  ")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`))
		return
	}
	writeJSON(w, http.StatusOK, append(body, '\n'))
}

// guard refuses requests that a web page could have sent: a Host that is not a loopback name
// (DNS rebinding) and cross-site browser requests (Origin, Sec-Fetch-Site).
func guard(next http.Handler, log *slog.Logger) http.Handler {
	noisy := lograte.New(log, 10*time.Second, 5)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := refuse(r); reason != "" {
			noisy.Log(slog.LevelWarn, reason, "api: refused request", "method", r.Method, "path", r.URL.Path, "host", r.Host, "reason", reason)
			writeJSON(w, http.StatusForbidden, []byte(`{"detail":"Forbidden"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuse says why a request must be refused, or "" to serve it.
func refuse(r *http.Request) string {
	if !IsLoopbackHost(r.Host) {
		return "Host is not a loopback name"
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
		return "cross-origin request"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "none", "same-origin":
	default:
		return "cross-site browser request"
	}
	return ""
}

// IsLoopbackHost reports whether a Host header is a loopback name or address with an
// optional numeric port (1–65535); anything else, such as "127.0.0.1:80.evil.com", is not.
func IsLoopbackHost(hostport string) bool {
	host := hostport
	if h, port, err := net.SplitHostPort(hostport); err == nil {
		n, perr := strconv.ParseUint(port, 10, 16)
		if perr != nil || n == 0 || strings.TrimLeft(port, "0123456789") != "" {
			return false
		}
		host = h
	} else if strings.HasPrefix(hostport, "[") {
		if !strings.HasSuffix(hostport, "]") {
			return false
		}
		host = hostport[1 : len(hostport)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
