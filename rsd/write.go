package rsd

import (
	"context"
	"fmt"
	"time"

	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// frame runs one frame write under the write lock with the write timeout.
func (c *Conn) frame(write func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	err := write()
	if err != nil {
		c.fail(fmt.Errorf("rsd: write: %w", err))
	}
	return err
}

// writeHeadersFrame writes a zero-length HEADERS frame, as CDS opens a stream.
func (c *Conn) writeHeadersFrame(stream uint32) error {
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, EndHeaders: true})
}

// stream returns the send state of a stream, creating it with the peer's initial window.
func (c *Conn) stream(id uint32) *sendStream {
	c.fc.Lock()
	defer c.fc.Unlock()
	return c.streamLocked(id)
}

func (c *Conn) streamLocked(id uint32) *sendStream {
	s := c.streams[id]
	if s == nil {
		s = &sendStream{win: c.initWin}
		c.streams[id] = s
	}
	return s
}

// takeWindow charges n sent bytes to the connection and stream windows without waiting
// (only for the client setup, which fits the peer's default windows).
func (c *Conn) takeWindow(stream uint32, n int) {
	c.fc.Lock()
	defer c.fc.Unlock()
	c.connWin -= int64(n)
	c.streamLocked(stream).win -= int64(n)
}

// writeData sends b on stream, waiting for the peer's windows as needed; a message's frames
// are never interleaved with another message's on the same stream.
func (c *Conn) writeData(ctx context.Context, stream uint32, b []byte) error {
	s := c.stream(stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.fc.Lock()
		c.fcCond.Broadcast()
		c.fc.Unlock()
	})
	defer stop()
	for len(b) > 0 {
		c.fc.Lock()
		for (c.connWin <= 0 || s.win <= 0) && c.closeErr == nil && ctx.Err() == nil {
			c.fcCond.Wait()
		}
		if c.closeErr != nil {
			err := c.closeErr
			c.fc.Unlock()
			return err
		}
		if err := ctx.Err(); err != nil {
			c.fc.Unlock()
			return fmt.Errorf("rsd: waiting for the peer's flow-control window on stream %d: %w", stream, err)
		}
		n := min(int64(len(b)), c.connWin, s.win, int64(c.maxFrame))
		c.connWin -= n
		s.win -= n
		c.fc.Unlock()
		chunk := b[:n]
		b = b[n:]
		if err := c.frame(func() error { return c.fr.WriteData(stream, false, chunk) }); err != nil {
			return err
		}
	}
	return nil
}

// Send sends one message on stream, opening nothing: the caller chose the stream. A server
// sends on streams 1 and 3 only after its own setup message there.
func (c *Conn) Send(ctx context.Context, stream uint32, m *xpc.Message) error {
	if err := c.setup.wait(ctx, c, stream); err != nil {
		return err
	}
	return c.send(ctx, stream, m)
}

// send encodes m and writes it without waiting for the server setup.
func (c *Conn) send(ctx context.Context, stream uint32, m *xpc.Message) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("rsd: encode: %w", err)
	}
	return c.writeData(ctx, stream, b)
}

// OpenStream sends a zero-length HEADERS frame for a new stream.
func (c *Conn) OpenStream(stream uint32) error {
	return c.frame(func() error { return c.writeHeadersFrame(stream) })
}

// Post sends a one-way MSG with body on the root channel.
func (c *Conn) Post(ctx context.Context, body *xpc.Dict) error {
	return c.Send(ctx, RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: c.newID(), Body: body})
}

// Request sends body with WANTS_REPLY on the root channel and waits for the reply.
func (c *Conn) Request(ctx context.Context, body *xpc.Dict) (*xpc.Message, error) {
	id := c.newID()
	ch := make(chan *xpc.Message, 1)
	c.pmu.Lock()
	c.pending[id] = ch
	c.pmu.Unlock()
	defer func() {
		c.pmu.Lock()
		delete(c.pending, id)
		c.pmu.Unlock()
	}()
	m := &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg | xpc.FlagWantsReply, ID: id, Body: body}
	if err := c.Send(ctx, RootChannel, m); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-c.done:
		return nil, c.Err()
	case <-ctx.Done():
		return nil, fmt.Errorf("rsd: waiting for reply %d: %w", id, ctx.Err())
	}
}

// Reply answers request req with body on the reply channel, with the request's id.
func (c *Conn) Reply(ctx context.Context, req *xpc.Message, body *xpc.Dict) error {
	m := &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg | xpc.FlagIsReply, ID: req.ID}
	if body != nil {
		m.Body = body
	}
	return c.Send(ctx, ReplyChannel, m)
}

func (c *Conn) newID() uint64 {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	id := c.nextID
	c.nextID++
	return id
}

// ResetStream sends RST_STREAM with code on stream once the stream's queued messages are out.
func (c *Conn) ResetStream(stream uint32, code http2.ErrCode) error {
	s := c.stream(stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.frame(func() error { return c.fr.WriteRSTStream(stream, code) })
}
