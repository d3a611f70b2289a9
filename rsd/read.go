package rsd

import (
	"errors"
	"fmt"
	"io"

	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// GoAwayError is a GOAWAY received from the peer.
type GoAwayError struct {
	Code  http2.ErrCode
	Debug string
}

func (e *GoAwayError) Error() string {
	return fmt.Sprintf("rsd: peer sent GOAWAY %v %q", e.Code, e.Debug)
}

// recvStream is the receive side of one stream: a reassembly buffer for messages that straddle frames.
type recvStream struct {
	buf []byte
}

// readLoop reads frames until the connection fails.
func (c *Conn) readLoop() {
	streams := map[uint32]*recvStream{}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			c.fail(fmt.Errorf("rsd: read: %w", err))
			break
		}
		if err := c.handle(f, streams); err != nil {
			c.fail(err)
			break
		}
	}
	close(c.in)
}

func (c *Conn) handle(f http2.Frame, streams map[uint32]*recvStream) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.applySettings(f); err != nil {
			return err
		}
		return c.frame(c.fr.WriteSettingsAck)
	case *http2.WindowUpdateFrame:
		c.fc.Lock()
		if f.StreamID == 0 {
			c.connWin += int64(f.Increment)
		} else if s := c.streams[f.StreamID]; s != nil {
			s.win += int64(f.Increment)
		} else {
			c.streams[f.StreamID] = &sendStream{win: c.initWin + int64(f.Increment)}
		}
		c.fcCond.Broadcast()
		c.fc.Unlock()
	case *http2.HeadersFrame:
		return c.opened(f.StreamID)
	case *http2.DataFrame:
		if err := c.opened(f.StreamID); err != nil {
			return err
		}
		if n := f.Length; n > 0 {
			if err := c.frame(func() error {
				if err := c.fr.WriteWindowUpdate(0, n); err != nil {
					return err
				}
				return c.fr.WriteWindowUpdate(f.StreamID, n)
			}); err != nil {
				return err
			}
		}
		s := streams[f.StreamID]
		if s == nil {
			s = &recvStream{}
			streams[f.StreamID] = s
		}
		s.buf = append(s.buf, f.Data()...)
		return c.deliver(f.StreamID, s)
	case *http2.PingFrame:
		if !f.IsAck() {
			return c.frame(func() error { return c.fr.WritePing(true, f.Data) })
		}
	case *http2.GoAwayFrame:
		return &GoAwayError{Code: f.ErrCode, Debug: string(f.DebugData())}
	case *http2.RSTStreamFrame:
		delete(streams, f.StreamID)
	}
	return nil
}

// applySettings takes the peer's INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE.
func (c *Conn) applySettings(f *http2.SettingsFrame) error {
	c.fc.Lock()
	defer c.fc.Unlock()
	return f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return fmt.Errorf("rsd: peer SETTINGS: %w", err)
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.initWin
			c.initWin = int64(s.Val)
			for _, st := range c.streams {
				st.win += delta
			}
			c.fcCond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(s.Val)
		}
		return nil
	})
}

// deliver cuts whole messages off the front of a stream's buffer and hands them on.
func (c *Conn) deliver(stream uint32, s *recvStream) error {
	for len(s.buf) >= xpc.HeaderSize {
		h, err := xpc.ParseHeader(s.buf)
		if err != nil {
			return fmt.Errorf("rsd: stream %d: %w", stream, err)
		}
		if len(s.buf) < h.Size() {
			return nil
		}
		m, err := xpc.DecodeMessage(s.buf[:h.Size()])
		if err != nil {
			return fmt.Errorf("rsd: stream %d: %w", stream, err)
		}
		s.buf = s.buf[h.Size():]
		if len(s.buf) == 0 {
			s.buf = nil
		}
		if err := c.dispatch(stream, m); err != nil {
			return err
		}
	}
	return nil
}

// dispatch routes a reply to its waiting request, anything else to Receive.
func (c *Conn) dispatch(stream uint32, m *xpc.Message) error {
	if m.Flags.Has(xpc.FlagIsReply) {
		c.pmu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.pmu.Unlock()
		if ch != nil {
			ch <- m
			return nil
		}
	}
	select {
	case c.in <- Incoming{Stream: stream, Msg: m}:
		return nil
	case <-c.done:
		return c.Err()
	}
}

// opened runs the server's per-stream setup when the client first uses stream 1 or 3.
func (c *Conn) opened(stream uint32) error {
	if !c.server {
		return nil
	}
	switch {
	case stream == RootChannel && !c.rootOpened:
		c.rootOpened = true
		if err := c.writeMsg(RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet, Body: &xpc.Dict{}}); err != nil {
			return err
		}
		if err := c.writeMsg(RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypePing}); err != nil {
			return err
		}
		close(c.rootReady)
	case stream == ReplyChannel && !c.replyOpened:
		c.replyOpened = true
		return c.writeMsg(ReplyChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.FlagOpensReplyChannel})
	}
	return nil
}
