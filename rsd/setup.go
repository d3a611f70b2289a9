package rsd

import (
	"context"
	"fmt"
	"sync"

	"github.com/iosmux/iosmux/xpc"
)

// serverSetup is the device side of channel setup (remotexpc.md §7.2): when the client first
// uses stream 1 the server sends HEADER{} and PING there, when it first uses stream 3 it sends
// HEADER|OPENS_REPLY_CHANNEL there, each as soon as the client's window allows and without
// waiting for the other stream. Ready closes when both are out.
type serverSetup struct {
	mu        sync.Mutex
	started   map[uint32]bool
	rootSent  chan struct{}
	replySent chan struct{}
	sent      int
	ready     chan struct{}
}

func (s *serverSetup) init(server bool) {
	s.started = map[uint32]bool{}
	s.rootSent = make(chan struct{})
	s.replySent = make(chan struct{})
	s.ready = make(chan struct{})
	if !server {
		close(s.rootSent)
		close(s.replySent)
		close(s.ready)
		s.sent = 2
	}
}

// setupMessages are what a server sends when the client opens stream.
func setupMessages(stream uint32) []*xpc.Message {
	switch stream {
	case RootChannel:
		return []*xpc.Message{
			{Flags: xpc.FlagAlwaysSet, Body: &xpc.Dict{}},
			{Flags: xpc.FlagAlwaysSet | xpc.TypePing},
		}
	case ReplyChannel:
		return []*xpc.Message{{Flags: xpc.FlagAlwaysSet | xpc.FlagOpensReplyChannel}}
	}
	return nil
}

// sentChan is closed once the server's setup of stream is out (nil: no setup on stream).
func (s *serverSetup) sentChan(stream uint32) chan struct{} {
	switch stream {
	case RootChannel:
		return s.rootSent
	case ReplyChannel:
		return s.replySent
	}
	return nil
}

// opened starts a server's setup of stream the first time the client uses it; it is called
// by the read loop and never waits.
func (s *serverSetup) opened(c *Conn, stream uint32) {
	ch := s.sentChan(stream)
	if ch == nil {
		return
	}
	s.mu.Lock()
	first := !s.started[stream] && s.sent < 2
	s.started[stream] = true
	s.mu.Unlock()
	if first {
		go s.send(c, stream, ch)
	}
}

// send writes the setup messages of stream, waiting for the peer's window if it must.
func (s *serverSetup) send(c *Conn, stream uint32, ch chan struct{}) {
	for _, m := range setupMessages(stream) {
		if err := c.send(context.Background(), stream, m); err != nil {
			return // the connection has failed; waiters see c.done
		}
	}
	close(ch)
	s.mu.Lock()
	s.sent++
	if s.sent == 2 {
		close(s.ready)
	}
	s.mu.Unlock()
}

// wait returns once a server's own setup message on stream is out.
func (s *serverSetup) wait(ctx context.Context, c *Conn, stream uint32) error {
	ch := s.sentChan(stream)
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		return fmt.Errorf("rsd: waiting for the client to open stream %d: %w", stream, ctx.Err())
	}
}
