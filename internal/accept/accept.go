// Package accept runs accept loops and tracks live connections, so one call ends them all.
package accept

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/iosmux/iosmux/internal/lograte"
)

// MaxConns bounds the connections one listener serves at once; more are refused.
const MaxConns = 4096

// Accept errors other than a closed listener (EMFILE, ENFILE, ENOBUFS, …) are retried after
// a pause that doubles from firstRetry up to maxRetry.
const (
	firstRetry = 5 * time.Millisecond
	maxRetry   = time.Second
)

// Repeated warnings (refused connections) pass LogBurst times per LogWindow and endpoint,
// then are summarised.
const (
	LogWindow = 10 * time.Second
	LogBurst  = 5
)

// Failure is an endpoint whose accepts are failing.
type Failure struct {
	Endpoint string
	Err      error
	Since    time.Time
}

// Handler serves one accepted connection; it must return when ctx ends.
type Handler func(ctx context.Context, nc net.Conn)

// Group runs accept loops and tracks every live connection.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
	failed map[string]Failure
	noisy  *lograte.Limiter // repeated refusals
}

// New returns a group that ends with ctx or Close.
func New(ctx context.Context, log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &Group{ctx: ctx, cancel: cancel, log: log, conns: map[net.Conn]struct{}{}, failed: map[string]Failure{},
		noisy: lograte.New(log, LogWindow, LogBurst)}
	context.AfterFunc(ctx, g.closeAll)
	return g
}

// Context ends when the group closes.
func (g *Group) Context() context.Context { return g.ctx }

// Serve accepts on ln until the group closes, running h for each connection, at most
// MaxConns at once. An accept error pauses the loop (with backoff) and shows in Failing until
// an accept succeeds again.
func (g *Group) Serve(name string, ln net.Listener, h Handler) { g.ServeN(name, ln, MaxConns, h) }

// ServeN is Serve with at most maxConns connections at once; more are closed on arrival.
func (g *Group) ServeN(name string, ln net.Listener, maxConns int, h Handler) {
	g.mu.Lock()
	g.lns = append(g.lns, ln)
	g.mu.Unlock()
	if g.ctx.Err() != nil {
		ln.Close()
	}
	sem := make(chan struct{}, maxConns)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		retry := time.Duration(0)
		for {
			nc, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) || g.ctx.Err() != nil {
					return
				}
				retry = min(max(2*retry, firstRetry), maxRetry)
				g.failing(name, err)
				select {
				case <-time.After(retry):
				case <-g.ctx.Done():
					return
				}
				continue
			}
			if retry != 0 {
				retry = 0
				g.recovered(name)
			}
			select {
			case sem <- struct{}{}:
			default:
				g.noisy.Log(slog.LevelWarn, "refuse "+name, "too many connections; refusing one", "endpoint", name)
				nc.Close()
				continue
			}
			if !g.Track(nc) {
				nc.Close()
				<-sem
				return
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() { <-sem }()
				defer g.Untrack(nc)
				h(g.ctx, nc)
			}()
		}
	}()
}

// failing records an accept error; the first of a run is logged at warn level.
func (g *Group) failing(name string, err error) {
	g.mu.Lock()
	f, already := g.failed[name]
	if !already {
		f = Failure{Endpoint: name, Since: time.Now()}
	}
	f.Err = err
	g.failed[name] = f
	g.mu.Unlock()
	if !already {
		g.log.Warn("accept failing; retrying", "endpoint", name, "err", err)
	}
}

// recovered clears an endpoint's failure once it accepts again.
func (g *Group) recovered(name string) {
	g.mu.Lock()
	f := g.failed[name]
	delete(g.failed, name)
	g.mu.Unlock()
	g.log.Info("accepting again", "endpoint", name, "failed_for", time.Since(f.Since).Round(time.Millisecond).String())
}

// Failing lists the endpoints whose accepts are failing now.
func (g *Group) Failing() []Failure {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Failure
	for _, f := range g.failed {
		out = append(out, f)
	}
	return out
}

// Track adds a connection the group must close when it ends; false means it has ended.
func (g *Group) Track(nc net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ctx.Err() != nil {
		return false
	}
	g.conns[nc] = struct{}{}
	return true
}

// Untrack closes a tracked connection and forgets it.
func (g *Group) Untrack(nc net.Conn) {
	g.mu.Lock()
	delete(g.conns, nc)
	g.mu.Unlock()
	nc.Close()
}

// CloseConns closes every tracked connection; the listeners keep accepting.
func (g *Group) CloseConns() {
	g.mu.Lock()
	conns := g.conns
	g.conns = map[net.Conn]struct{}{}
	g.mu.Unlock()
	for nc := range conns {
		nc.Close()
	}
}

func (g *Group) closeAll() {
	g.mu.Lock()
	for _, ln := range g.lns {
		ln.Close()
	}
	g.mu.Unlock()
	g.CloseConns()
}

// Close stops every listener and connection and waits for their goroutines.
func (g *Group) Close() {
	g.cancel()
	g.wg.Wait()
}
