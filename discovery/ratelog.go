package discovery

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RateLogInterval is how often one kind of message about hostile input may be logged.
const RateLogInterval = 10 * time.Second

// rateLog logs each key at most once per RateLogInterval and says how many were held back.
type rateLog struct {
	log *slog.Logger

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

func newRateLog(log *slog.Logger) *rateLog {
	return &rateLog{log: log, last: map[string]time.Time{}, held: map[string]int{}}
}

// logf logs msg at level unless key was logged less than RateLogInterval ago.
func (r *rateLog) logf(level slog.Level, key, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if t, ok := r.last[key]; ok && now.Sub(t) < RateLogInterval {
		r.held[key]++
		r.mu.Unlock()
		return
	}
	if len(r.last) > 1024 { // keys are few and fixed; never let them grow
		clear(r.last)
		clear(r.held)
	}
	r.last[key] = now
	held := r.held[key]
	delete(r.held, key)
	r.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	r.log.Log(context.Background(), level, msg, args...)
}
