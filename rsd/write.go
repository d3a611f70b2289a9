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
	c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	err := write()
	if err != nil {
		c.fail(fmt.Errorf("rsd: write: %w", err))
	}
	return err
}

// writeHeaders opens a stream with a zero-length HEADERS frame, as CDS does.
func (c *Conn) writeHeaders(stream uint32) error {
	return c.frame(func() error {
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, EndHeaders: true})
	})
}

// stream returns the send state of a stream, creating it with the peer's initial window.
func (c *Conn) stream(id uint32) *sendStream {
	c.fc.Lock()
	defer c.fc.Unlock()
	s := c.streams[id]
	if s == nil {
		s = &sendStream{win: c.initWin}
		c.streams[id] = s
	}
	return s
}

// writeMsg encodes m and sends it on stream as DATA frames within the peer's windows.
func (c *Conn) writeMsg(stream uint32, m *xpc.Message) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("rsd: encode: %w", err)
	}
	return c.writeData(context.Background(), stream, b, false)
}

// writeData sends b on stream, waiting for window as needed; it never splits across messages.
func (c *Conn) writeData(ctx context.Context, stream uint32, b []byte, endStream bool) error {
	s := c.stream(stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.fc.Lock()
		c.fcCond.Broadcast()
		c.fc.Unlock()
	})
	defer stop()
	for len(b) > 0 || endStream {
		c.fc.Lock()
		for len(b) > 0 && (c.connWin <= 0 || s.win <= 0) && c.closeErr == nil && ctx.Err() == nil {
			c.fcCond.Wait()
		}
		if c.closeErr != nil {
			err := c.closeErr
			c.fc.Unlock()
			return err
		}
		if err := ctx.Err(); err != nil {
			c.fc.Unlock()
			return err
		}
		n := min(int64(len(b)), c.connWin, s.win, int64(c.maxFrame))
		c.connWin -= n
		s.win -= n
		c.fc.Unlock()
		chunk := b[:n]
		b = b[n:]
		last := endStream && len(b) == 0
		if err := c.frame(func() error { return c.fr.WriteData(stream, last, chunk) }); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
	return nil
}

// Send sends one message on stream, opening nothing: the caller chose the stream.
func (c *Conn) Send(ctx context.Context, stream uint32, m *xpc.Message) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("rsd: encode: %w", err)
	}
	return c.writeData(ctx, stream, b, false)
}

// OpenStream sends a zero-length HEADERS frame for a new stream.
func (c *Conn) OpenStream(stream uint32) error { return c.writeHeaders(stream) }

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

// ResetStream sends RST_STREAM with code on stream.
func (c *Conn) ResetStream(stream uint32, code http2.ErrCode) error {
	return c.frame(func() error { return c.fr.WriteRSTStream(stream, code) })
}
