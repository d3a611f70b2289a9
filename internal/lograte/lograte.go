// Package lograte keeps repeated log events from flooding the log: past a burst per window,
// events of one kind are counted and reported in one summary line.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the kinds of event tracked at once; past it new kinds share one bucket.
const maxKeys = 1024

// Limiter passes at most burst lines per key and window to its logger; the lines past that
// are counted and summarised in one line when the window ends.
type Limiter struct {
	log    *slog.Logger
	window time.Duration
	burst  int

	mu   sync.Mutex
	keys map[string]*bucket
}

type bucket struct {
	start      time.Time
	n          int
	suppressed int
	level      slog.Level
	msg        string
	timer      *time.Timer
}

// New returns a limiter writing to log.
func New(log *slog.Logger, window time.Duration, burst int) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{log: log, window: window, burst: burst, keys: map[string]*bucket{}}
}

// Log writes msg at level unless key's burst for this window is spent.
func (l *Limiter) Log(level slog.Level, key, msg string, args ...any) {
	l.mu.Lock()
	b := l.keys[key]
	if b == nil {
		if len(l.keys) >= maxKeys-1 {
			key = "\x00other"
			b = l.keys[key]
		}
		if b == nil {
			b = &bucket{start: time.Now()}
			l.keys[key] = b
		}
	}
	if b.n < l.burst {
		b.n++
		l.mu.Unlock()
		l.log.Log(context.Background(), level, msg, args...)
		return
	}
	b.suppressed++
	b.level, b.msg = level, msg
	if b.timer == nil {
		b.timer = time.AfterFunc(max(l.window-time.Since(b.start), 0), func() { l.flush(key) })
	}
	l.mu.Unlock()
}

// flush ends key's window: it writes the summary of what was suppressed and forgets the key.
func (l *Limiter) flush(key string) {
	l.mu.Lock()
	b := l.keys[key]
	delete(l.keys, key)
	l.mu.Unlock()
	if b == nil || b.suppressed == 0 {
		return
	}
	l.log.Log(context.Background(), b.level, b.msg+" (repeated; summarised)",
		"suppressed", b.suppressed, "window", time.Since(b.start).Round(time.Millisecond).String())
}
