package rsd

import (
	"context"
	"fmt"
	"sync"

	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// creditThreshold is how much consumed data is owed before a WINDOW_UPDATE goes out: credit
// is returned in batches, never per frame, and always before the peer's window runs dry.
const creditThreshold = InitialWindowSize / 4

// recvSide is the receive half of a connection: this side's windows as the peer sees them,
// per-stream reassembly, and the queue of messages waiting for Receive.
//
// Credit policy: bytes of a finished message go back to the peer when the consumer takes the
// message (a reply, when its Request gets it). Bytes of an unfinished message go back as they
// arrive, so a message larger than the window can complete, while the bytes credited that way
// and still held (unfinished, or finished but not yet taken) stay within MaxPartialBytes; past
// it they wait until the consumer takes something.
type recvSide struct {
	mu       sync.Mutex
	connWin  int64 // what the peer may still send on the connection
	connOwed int64 // consumed, not yet returned
	streams  map[uint32]*recvStream
	early    int64 // bytes credited before they were taken and still held

	queue  []queued
	notify chan struct{}
}

// recvStream is the receive side of one stream.
type recvStream struct {
	buf      []byte // an unfinished message
	credited int64  // how much of buf was credited early
	win      int64
	owed     int64
}

// queued is a message waiting for Receive with the credit it returns when taken and the part
// of it that was credited early.
type queued struct {
	in     Incoming
	credit int64
	early  int64
}

func (r *recvSide) init() {
	r.connWin = InitialWindowSize
	r.streams = map[uint32]*recvStream{}
	r.notify = make(chan struct{}, 1)
}

// open returns stream's receive state, opening it when the peer may open another.
func (r *recvSide) open(id uint32) (*recvStream, bool) {
	s := r.streams[id]
	if s == nil {
		if len(r.streams) >= MaxConcurrentStreams {
			return nil, false
		}
		s = &recvStream{win: InitialWindowSize}
		r.streams[id] = s
	}
	return s, true
}

// close forgets a stream the peer reset or ended, with its unfinished message.
func (r *recvSide) close(id uint32) {
	if s := r.streams[id]; s != nil {
		r.early -= s.credited
		delete(r.streams, id)
	}
}

// creditLocked returns n consumed bytes of stream (0: none) to the peer, in batches.
func (r *recvSide) creditLocked(c *Conn, stream uint32, n int64) {
	if n <= 0 {
		return
	}
	r.connOwed += n
	if r.connOwed >= creditThreshold {
		c.queueCredit(0, r.connOwed)
		r.connWin += r.connOwed
		r.connOwed = 0
	}
	if s := r.streams[stream]; s != nil {
		s.owed += n
		if s.owed >= creditThreshold {
			c.queueCredit(stream, s.owed)
			s.win += s.owed
			s.owed = 0
		}
	}
}

// onHeaders notes a stream the peer opened; false means it was refused.
func (c *Conn) onHeaders(f *http2.HeadersFrame) error {
	r := &c.recv
	r.mu.Lock()
	_, ok := r.open(f.StreamID)
	if ok && f.StreamEnded() {
		r.close(f.StreamID)
	}
	r.mu.Unlock()
	if !ok {
		return c.refuse(f.StreamID)
	}
	return nil
}

// refuse resets a stream past the peer's stream limit.
func (c *Conn) refuse(id uint32) error {
	return c.queueControl(ctlFrame{kind: http2.FrameRSTStream, stream: id, code: http2.ErrCodeRefusedStream})
}

// onData accounts a DATA frame against the windows and hands on the messages it finishes.
func (c *Conn) onData(f *http2.DataFrame) error {
	r := &c.recv
	n := int64(f.Length)
	data := f.Data()
	r.mu.Lock()
	r.connWin -= n
	if r.connWin < 0 {
		r.mu.Unlock()
		return fmt.Errorf("rsd: peer overran the connection window (FLOW_CONTROL_ERROR)")
	}
	s, ok := r.open(f.StreamID)
	if !ok {
		r.creditLocked(c, 0, n)
		r.mu.Unlock()
		return c.refuse(f.StreamID)
	}
	s.win -= n
	if s.win < 0 {
		r.mu.Unlock()
		return fmt.Errorf("rsd: peer overran the window of stream %d (FLOW_CONTROL_ERROR)", f.StreamID)
	}
	r.creditLocked(c, f.StreamID, n-int64(len(data))) // padding
	msgs, err := c.reassemble(f.StreamID, s, data)
	if err == nil && f.StreamEnded() {
		r.close(f.StreamID)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	for _, q := range msgs {
		c.dispatch(q)
	}
	return nil
}

// reassemble appends data to the stream's unfinished message and cuts off every finished one,
// each with the credit it still owes; the unfinished rest is credited now, within budget.
func (c *Conn) reassemble(id uint32, s *recvStream, data []byte) ([]queued, error) {
	r := &c.recv
	credited := s.credited // the front of buf that was credited early
	buf := append(s.buf, data...)
	var out []queued
	for len(buf) >= xpc.HeaderSize {
		h, err := xpc.ParseHeader(buf)
		if err != nil {
			return nil, fmt.Errorf("rsd: stream %d: %w", id, err)
		}
		size := h.Size()
		if size > c.opts.MaxMessageSize {
			return nil, fmt.Errorf("rsd: stream %d: message of %d bytes exceeds the %d-byte limit", id, size, c.opts.MaxMessageSize)
		}
		if len(buf) < size {
			break
		}
		m, err := xpc.DecodeMessage(buf[:size])
		if err != nil {
			return nil, fmt.Errorf("rsd: stream %d: %w", id, err)
		}
		early := min(credited, int64(size))
		credited -= early
		out = append(out, queued{in: Incoming{Stream: id, Msg: m}, credit: int64(size) - early, early: early})
		buf = buf[size:]
	}
	if len(buf) == 0 {
		buf = nil
	} else if len(out) > 0 {
		buf = append([]byte(nil), buf...) // let the finished messages' bytes go
	}
	s.buf = buf
	s.credited = credited
	r.creditPartial(c, id, s)
	return out, nil
}

// creditPartial credits early as much of a stream's unfinished message as the budget allows.
func (r *recvSide) creditPartial(c *Conn, id uint32, s *recvStream) {
	n := min(int64(len(s.buf))-s.credited, int64(c.opts.MaxPartialBytes)-r.early)
	if n <= 0 {
		return
	}
	s.credited += n
	r.early += n
	r.creditLocked(c, id, n)
}

// release returns a taken message's credit and lets waiting unfinished messages use the
// budget it frees.
func (r *recvSide) release(c *Conn, q queued) {
	r.early -= q.early
	r.creditLocked(c, q.in.Stream, q.credit)
	if q.early == 0 {
		return
	}
	for id, s := range r.streams {
		if int64(len(s.buf)) > s.credited {
			r.creditPartial(c, id, s)
		}
	}
}

// dispatch routes a reply to its waiting request, anything else to the Receive queue.
func (c *Conn) dispatch(q queued) {
	m := q.in.Msg
	if m.Flags.Has(xpc.FlagIsReply) {
		c.pmu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.pmu.Unlock()
		if ch != nil {
			ch <- m // buffered, one reply per request
			c.recv.mu.Lock()
			c.recv.release(c, q)
			c.recv.mu.Unlock()
			return
		}
	}
	r := &c.recv
	r.mu.Lock()
	r.queue = append(r.queue, q)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// take returns the next queued message, returning its credit; it waits for one until ctx
// ends or the connection has ended with nothing left queued.
func (r *recvSide) take(ctx context.Context, c *Conn) (Incoming, error) {
	for {
		r.mu.Lock()
		if len(r.queue) > 0 {
			q := r.queue[0]
			r.queue[0] = queued{}
			r.queue = r.queue[1:]
			if len(r.queue) == 0 {
				r.queue = nil
			}
			r.release(c, q)
			more := len(r.queue) > 0
			r.mu.Unlock()
			if more {
				select {
				case r.notify <- struct{}{}:
				default:
				}
			}
			return q.in, nil
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-c.done:
			r.mu.Lock()
			empty := len(r.queue) == 0
			r.mu.Unlock()
			if empty {
				return Incoming{}, c.Err()
			}
		case <-ctx.Done():
			return Incoming{}, ctx.Err()
		}
	}
}
