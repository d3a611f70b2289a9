package rsdtest

import (
	"fmt"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// Client setup messages (remotexpc.md §7.1).
var (
	headerMsg    = &xpc.Message{Flags: xpc.FlagAlwaysSet, Body: &xpc.Dict{}}
	pingMsg      = &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypePing}
	openReplyMsg = &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.FlagOpensReplyChannel}
)

// Settings are what the client announces; the zero value is CDS's.
type Settings struct {
	// InitialWindow, when set, replaces CDS's INITIAL_WINDOW_SIZE (1 MiB); use ZeroWindow for 0.
	InitialWindow uint32
	ZeroWindow    bool
}

// Preface writes the connection preface, SETTINGS and the connection WINDOW_UPDATE.
func (c *Client) Preface(s Settings) error {
	if err := c.Write([]byte(rsd.ClientPreface)); err != nil {
		return err
	}
	win := uint32(rsd.InitialWindowSize)
	if s.InitialWindow != 0 {
		win = s.InitialWindow
	}
	if s.ZeroWindow {
		win = 0
	}
	if err := c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: rsd.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: win}); err != nil {
		return err
	}
	return c.fr.WriteWindowUpdate(0, rsd.ConnWindowIncrement)
}

// openStream writes a zero-length HEADERS frame.
func (c *Client) openStream(id uint32) error {
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true})
}

// ackSettings reads up to the server's SETTINGS (if not seen yet) and acknowledges it.
func (c *Client) ackSettings() error {
	for !c.sawSettings {
		if _, err := c.ReadFrame(); err != nil {
			return err
		}
	}
	if c.acked {
		return nil
	}
	c.acked = true
	return c.fr.WriteSettingsAck()
}

// Setup runs the client side of channel setup in order o, after the preface. Orders that
// wait (StepByStep) read the server's setup messages; the others leave them to CheckSetup.
func (c *Client) Setup(o Order, s Settings) error {
	if err := c.Preface(s); err != nil {
		return err
	}
	steps := map[Order][]func() error{
		Devicectl: {c.h(1), c.d(1, headerMsg), c.h(3), c.d(1, pingMsg), c.d(3, openReplyMsg)},
		Appium:    {c.h(1), c.d(1, headerMsg), c.h(3), c.d(1, pingMsg), c.d(3, openReplyMsg), c.blindAck},
		Idevice:   {c.h(1), c.d(1, headerMsg), c.h(3), c.d(3, openReplyMsg), c.d(1, pingMsg)},
		Frida:     {c.h(1), c.d(1, headerMsg), c.d(1, pingMsg), c.h(3), c.d(3, openReplyMsg)},
	}[o]
	if o == StepByStep {
		return c.stepByStep()
	}
	if steps == nil {
		return fmt.Errorf("rsdtest: unknown order %q", o)
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	if o != Appium {
		return c.ackSettings()
	}
	return nil
}

func (c *Client) h(id uint32) func() error { return func() error { return c.openStream(id) } }
func (c *Client) d(id uint32, m *xpc.Message) func() error {
	return func() error { return c.Send(id, m) }
}
func (c *Client) blindAck() error { c.acked = true; return c.fr.WriteSettingsAck() }

// stepByStep is go-ios's setup: each step waits for one message before the next.
func (c *Client) stepByStep() error {
	if err := c.ackSettings(); err != nil {
		return err
	}
	waits := []struct {
		send  []func() error
		on    uint32
		check func(*xpc.Message) error
	}{
		{[]func() error{c.h(1), c.d(1, headerMsg)}, 1, isHeader},
		{[]func() error{c.h(3), c.d(3, openReplyMsg)}, 3, isOpenReply},
		{[]func() error{c.d(1, pingMsg)}, 1, isPing},
	}
	for _, w := range waits {
		for _, s := range w.send {
			if err := s(); err != nil {
				return err
			}
		}
		m, err := c.Next(w.on)
		if err != nil {
			return err
		}
		if err := w.check(m); err != nil {
			return err
		}
	}
	c.checked = true
	return nil
}

func isHeader(m *xpc.Message) error {
	if d, ok := m.Body.(*xpc.Dict); m.Flags != xpc.FlagAlwaysSet || !ok || d.Len() != 0 {
		return fmt.Errorf("rsdtest: first stream-1 message is %v %v, want HEADER with {}", m.Flags, m.Body)
	}
	return nil
}

func isPing(m *xpc.Message) error {
	if m.Flags != xpc.FlagAlwaysSet|xpc.TypePing || m.Body != nil {
		return fmt.Errorf("rsdtest: second stream-1 message is %v, want PING", m.Flags)
	}
	return nil
}

func isOpenReply(m *xpc.Message) error {
	if m.Flags != xpc.FlagAlwaysSet|xpc.FlagOpensReplyChannel || m.Body != nil {
		return fmt.Errorf("rsdtest: first stream-3 message is %v, want HEADER|OPENS_REPLY_CHANNEL", m.Flags)
	}
	return nil
}

// CheckSetup reads the server's setup messages (remotexpc.md §7.2): exactly HEADER{} and PING
// on stream 1 and HEADER|OPENS_REPLY_CHANNEL on stream 3; StepByStep has read them already.
func (c *Client) CheckSetup() error {
	if c.checked {
		return nil
	}
	c.checked = true
	for _, w := range []struct {
		on    uint32
		check func(*xpc.Message) error
	}{{1, isHeader}, {1, isPing}, {3, isOpenReply}} {
		m, err := c.Next(w.on)
		if err != nil {
			return err
		}
		if err := w.check(m); err != nil {
			return err
		}
	}
	return nil
}

// Handshake runs setup in order o, reads the device Handshake as the next stream-1 message
// and, when reset is set, the RST_STREAM(1, NO_ERROR) that follows it.
func (c *Client) Handshake(o Order, reset bool) (*rsd.Handshake, error) {
	if err := c.Setup(o, Settings{}); err != nil {
		return nil, fmt.Errorf("setup (%s): %w", o, err)
	}
	return c.ReadHandshake(reset)
}

// ReadHandshake checks the setup messages, then reads the Handshake and optionally the reset.
func (c *Client) ReadHandshake(reset bool) (*rsd.Handshake, error) {
	if err := c.CheckSetup(); err != nil {
		return nil, fmt.Errorf("server setup messages: %w", err)
	}
	m, err := c.Next(1)
	if err != nil {
		return nil, fmt.Errorf("waiting for the Handshake: %w", err)
	}
	d, ok := m.Body.(*xpc.Dict)
	if !ok || m.Flags != xpc.FlagAlwaysSet|xpc.TypeMsg {
		return nil, fmt.Errorf("third stream-1 message is %v %T, want the Handshake MSG", m.Flags, m.Body)
	}
	h, err := rsd.ParseHandshake(d)
	if err != nil {
		return nil, err
	}
	if reset {
		if err := c.ExpectReset(1, http2.ErrCodeNo); err != nil {
			return nil, fmt.Errorf("after the Handshake: %w", err)
		}
	}
	return h, nil
}

// Matrix runs every client order against the RSD endpoint at addr, runs times each, reading
// every frame (RST_STREAM included); it returns the first failure. want, when set, is the
// device the handshake must name: its UDID and its handshake UUID.
func Matrix(addr string, runs int, want *rsd.Handshake) error {
	for _, o := range Orders {
		for i := range runs {
			c, err := Dial(addr, 30*time.Second)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", o, i, err)
			}
			h, err := c.Handshake(o, true)
			c.Close()
			if err != nil {
				return fmt.Errorf("%s run %d: %w", o, i, err)
			}
			if want != nil && (h.UDID() != want.UDID() || h.UUID != want.UUID) {
				return fmt.Errorf("%s run %d: handshake of %q %v, want %q %v", o, i, h.UDID(), h.UUID, want.UDID(), want.UUID)
			}
		}
	}
	return nil
}
