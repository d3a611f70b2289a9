// Package accept runs accept loops and tracks live connections, so one call ends them all.
package accept

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
)

// MaxConns bounds the connections one listener serves at once; more are refused.
const MaxConns = 4096

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
}

// New returns a group that ends with ctx or Close.
func New(ctx context.Context, log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	g := &Group{ctx: ctx, cancel: cancel, log: log, conns: map[net.Conn]struct{}{}}
	context.AfterFunc(ctx, g.closeAll)
	return g
}

// Context ends when the group closes.
func (g *Group) Context() context.Context { return g.ctx }

// Serve accepts on ln until the group closes, running h for each connection.
func (g *Group) Serve(name string, ln net.Listener, h Handler) {
	g.mu.Lock()
	g.lns = append(g.lns, ln)
	g.mu.Unlock()
	if g.ctx.Err() != nil {
		ln.Close()
	}
	sem := make(chan struct{}, MaxConns)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) && g.ctx.Err() == nil {
					g.log.Warn("accept failed", "endpoint", name, "err", err)
				}
				return
			}
			select {
			case sem <- struct{}{}:
			default:
				g.log.Warn("too many connections; refusing one", "endpoint", name)
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
