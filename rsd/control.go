package rsd

import (
	"fmt"
	"sync"

	"golang.org/x/net/http2"
)

// ctlFrame is a control frame the read loop asks the writer to send.
type ctlFrame struct {
	kind   http2.FrameType // FrameSettings (an ACK), FramePing (an ACK) or FrameRSTStream
	stream uint32
	code   http2.ErrCode
	data   [8]byte
}

// write sends f.
func (f ctlFrame) write(c *Conn) error {
	switch f.kind {
	case http2.FrameSettings:
		return c.fr.WriteSettingsAck()
	case http2.FramePing:
		return c.fr.WritePing(true, f.data)
	default:
		return c.fr.WriteRSTStream(f.stream, f.code)
	}
}

// control holds what the writer goroutine sends next: control frames in order and window
// credit per stream (0 is the connection), coalesced.
type control struct {
	mu     sync.Mutex
	frames []ctlFrame
	credit map[uint32]uint32
	wake   chan struct{}
}

func (q *control) init() {
	q.credit = map[uint32]uint32{}
	q.wake = make(chan struct{}, 1)
}

func (q *control) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// queueControl hands f to the writer; a peer that lets too many pile up is not reading.
func (c *Conn) queueControl(f ctlFrame) error {
	q := &c.ctl
	q.mu.Lock()
	if n := len(q.frames); n >= maxQueuedControl {
		q.mu.Unlock()
		return fmt.Errorf("rsd: peer does not read: %d control frames waiting", n)
	}
	q.frames = append(q.frames, f)
	q.mu.Unlock()
	q.signal()
	return nil
}

// queueCredit hands n bytes of window credit for stream (0: the connection) to the writer.
func (c *Conn) queueCredit(stream uint32, n int64) {
	q := &c.ctl
	q.mu.Lock()
	q.credit[stream] += uint32(n)
	q.mu.Unlock()
	q.signal()
}

// writeLoop sends queued control frames and window credit until the connection ends.
func (c *Conn) writeLoop() {
	q := &c.ctl
	for {
		select {
		case <-q.wake:
		case <-c.done:
			return
		}
		q.mu.Lock()
		frames, credit := q.frames, q.credit
		q.frames, q.credit = nil, map[uint32]uint32{}
		q.mu.Unlock()
		for _, f := range frames {
			if c.frame(func() error { return f.write(c) }) != nil {
				return
			}
		}
		if n := credit[0]; n > 0 {
			if c.frame(func() error { return c.fr.WriteWindowUpdate(0, n) }) != nil {
				return
			}
		}
		for id, n := range credit {
			if id == 0 || n == 0 {
				continue
			}
			if c.frame(func() error { return c.fr.WriteWindowUpdate(id, n) }) != nil {
				return
			}
		}
	}
}
