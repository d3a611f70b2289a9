package rsd

import (
	"errors"
	"fmt"
	"io"

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

// readLoop reads frames until the connection fails; it never waits on a write.
func (c *Conn) readLoop() {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			c.fail(fmt.Errorf("rsd: read: %w", err))
			return
		}
		if err := c.handle(f); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := c.applySettings(f); err != nil {
			return err
		}
		return c.queueControl(ctlFrame{kind: http2.FrameSettings})
	case *http2.WindowUpdateFrame:
		c.fc.Lock()
		if f.StreamID == 0 {
			c.connWin += int64(f.Increment)
		} else {
			c.streamLocked(f.StreamID).win += int64(f.Increment)
		}
		c.fcCond.Broadcast()
		c.fc.Unlock()
	case *http2.HeadersFrame:
		c.setup.opened(c, f.StreamID)
		return c.onHeaders(f)
	case *http2.DataFrame:
		c.setup.opened(c, f.StreamID)
		return c.onData(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			return c.queueControl(ctlFrame{kind: http2.FramePing, data: f.Data})
		}
	case *http2.GoAwayFrame:
		return &GoAwayError{Code: f.ErrCode, Debug: string(f.DebugData())}
	case *http2.RSTStreamFrame:
		c.recv.mu.Lock()
		c.recv.close(f.StreamID)
		c.recv.mu.Unlock()
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
