package api

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Bounds on the API's HTTP connections (docs/limits.md).
const (
	// MaxConns bounds open API connections; past it the longest-idle one is closed.
	MaxConns = 256
	// IdleTimeout closes a keep-alive connection with no request.
	IdleTimeout = 60 * time.Second
	// ReadHeaderTimeout bounds a request's headers; ReadTimeout its whole body.
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
)

// NewServer is the HTTP server for the API handler h, with every bound above; its errors
// go to log.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := &connLimit{max: MaxConns, conns: map[net.Conn]connInfo{}}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState:         lim.track,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// connLimit keeps at most max connections open by closing the longest-idle one (a
// connection counts as idle from accept until its first request, and between requests).
type connLimit struct {
	max   int
	mu    sync.Mutex
	conns map[net.Conn]connInfo
}

type connInfo struct {
	idle  bool
	since time.Time
}

func (l *connLimit) track(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateNew, http.StateIdle:
		l.conns[c] = connInfo{idle: true, since: time.Now()}
	case http.StateActive:
		l.conns[c] = connInfo{since: time.Now()}
	case http.StateHijacked, http.StateClosed:
		delete(l.conns, c)
		return
	}
	if len(l.conns) <= l.max {
		return
	}
	var oldest net.Conn
	var at time.Time
	for oc, in := range l.conns {
		if in.idle && oc != c && (oldest == nil || in.since.Before(at)) {
			oldest, at = oc, in.since
		}
	}
	if oldest != nil {
		delete(l.conns, oldest)
		oldest.Close()
	}
}
