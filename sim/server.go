package sim

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
)

// MaxConnsPerListener bounds the connections one simulated endpoint serves at once.
const MaxConnsPerListener = 4096

// handler serves one accepted connection; it must return when ctx ends.
type handler func(ctx context.Context, nc net.Conn)

// acceptor runs accept loops and tracks every live connection so Close can end them all.
type acceptor struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	lns    []net.Listener
	conns  map[net.Conn]struct{}
}

func newAcceptor(ctx context.Context, log *slog.Logger) *acceptor {
	ctx, cancel := context.WithCancel(ctx)
	a := &acceptor{ctx: ctx, cancel: cancel, log: log, conns: map[net.Conn]struct{}{}}
	context.AfterFunc(ctx, a.closeAll)
	return a
}

// serve accepts on ln until the acceptor closes, running h for each connection.
func (a *acceptor) serve(name string, ln net.Listener, h handler) {
	a.mu.Lock()
	a.lns = append(a.lns, ln)
	a.mu.Unlock()
	if a.ctx.Err() != nil {
		ln.Close()
	}
	sem := make(chan struct{}, MaxConnsPerListener)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) && a.ctx.Err() == nil {
					a.log.Warn("accept failed", "endpoint", name, "err", err)
				}
				return
			}
			select {
			case sem <- struct{}{}:
			default:
				a.log.Warn("too many connections; refusing one", "endpoint", name)
				nc.Close()
				continue
			}
			if !a.track(nc) {
				nc.Close()
				<-sem
				return
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer func() { <-sem }()
				defer a.untrack(nc)
				h(a.ctx, nc)
			}()
		}
	}()
}

func (a *acceptor) track(nc net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return false
	}
	a.conns[nc] = struct{}{}
	return true
}

func (a *acceptor) untrack(nc net.Conn) {
	a.mu.Lock()
	delete(a.conns, nc)
	a.mu.Unlock()
	nc.Close()
}

func (a *acceptor) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ln := range a.lns {
		ln.Close()
	}
	for nc := range a.conns {
		nc.Close()
	}
}

// close stops every listener and connection and waits for their goroutines.
func (a *acceptor) close() {
	a.cancel()
	a.wg.Wait()
}
