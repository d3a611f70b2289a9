// Package rsdtest is a raw, frame-level RemoteXPC client for tests: it writes each real
// client's setup frames in that client's order (remotexpc.md §7.1) and reads every frame the
// server sends, so a reset, a GOAWAY or a message out of place is seen, never skipped.
package rsdtest

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// Order is one client implementation's setup order.
type Order string

// The client orders of remotexpc.md §7.1.
const (
	// Devicectl is devicectl's, pymobiledevice3's and CDS's: H1, D1 HEADER{}, H3, D1 PING,
	// D3 OPEN_REPLY, all at once; SETTINGS ACK when the device's SETTINGS arrive.
	Devicectl Order = "devicectl"
	// Appium is Devicectl's order plus an unsolicited SETTINGS ACK right away.
	Appium Order = "appium"
	// Idevice sends D3 OPEN_REPLY before D1 PING.
	Idevice Order = "idevice"
	// Frida sends D1 PING before H3.
	Frida Order = "frida"
	// StepByStep is go-ios's: it reads the device SETTINGS first, then sends each step and
	// waits for one message on that stream before the next.
	StepByStep Order = "step-by-step"
)

// Orders lists every order.
var Orders = []Order{Devicectl, Appium, Idevice, Frida, StepByStep}

// Client is one raw connection to a RemoteXPC server.
type Client struct {
	nc   net.Conn
	fr   *http2.Framer
	bufs map[uint32][]byte
	msgs map[uint32][]*xpc.Message
	// Resets are the streams the server reset, in order, with their codes.
	Resets []Reset
	// Frames counts every frame read, by type.
	Frames map[http2.FrameType]int
	// WindowCredit sums the server's WINDOW_UPDATE increments per stream (0: connection).
	WindowCredit  map[uint32]uint32
	pingAcks      map[[8]byte]bool
	sawSettings   bool
	acked         bool
	checked       bool // the server's setup messages were read
	sent          map[uint32]int64
	serverInitWin int64
}

// Reset is one RST_STREAM the server sent.
type Reset struct {
	Stream uint32
	Code   http2.ErrCode
}

// ErrReset is returned when the server resets a stream a read was not told to expect.
var ErrReset = errors.New("rsdtest: server reset a stream")

// New wraps a connected socket; every read and write is bounded by timeout.
func New(nc net.Conn, timeout time.Duration) *Client {
	nc.SetDeadline(time.Now().Add(timeout))
	return &Client{
		nc:            nc,
		fr:            http2.NewFramer(nc, nc),
		bufs:          map[uint32][]byte{},
		msgs:          map[uint32][]*xpc.Message{},
		Frames:        map[http2.FrameType]int{},
		WindowCredit:  map[uint32]uint32{},
		pingAcks:      map[[8]byte]bool{},
		sent:          map[uint32]int64{},
		serverInitWin: 65535,
	}
}

// Dial connects to addr with a fresh Client.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return New(nc, timeout), nil
}

// Conn is the underlying socket.
func (c *Client) Conn() net.Conn { return c.nc }

// Close closes the socket.
func (c *Client) Close() error { return c.nc.Close() }

// Write sends raw bytes.
func (c *Client) Write(b []byte) error {
	_, err := c.nc.Write(b)
	return err
}

// Framer is the client's framer, for tests that write frames of their own.
func (c *Client) Framer() *http2.Framer { return c.fr }

// ReadFrame reads one frame and accounts for it; DATA is cut into messages.
func (c *Client) ReadFrame() (http2.Frame, error) {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("rsdtest: reading a server frame: %w", err)
	}
	c.Frames[f.Header().Type]++
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			c.sawSettings = true
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				c.serverInitWin = int64(v)
			}
		}
	case *http2.RSTStreamFrame:
		c.Resets = append(c.Resets, Reset{f.StreamID, f.ErrCode})
	case *http2.WindowUpdateFrame:
		c.WindowCredit[f.StreamID] += f.Increment
	case *http2.PingFrame:
		if f.IsAck() {
			c.pingAcks[f.Data] = true
		}
	case *http2.GoAwayFrame:
		return f, fmt.Errorf("rsdtest: server sent GOAWAY %v %q", f.ErrCode, f.DebugData())
	case *http2.DataFrame:
		if err := c.cut(f.StreamID, f.Data()); err != nil {
			return f, err
		}
	}
	return f, nil
}

// cut appends data to a stream's buffer and takes every whole message off its front.
func (c *Client) cut(id uint32, data []byte) error {
	c.bufs[id] = append(c.bufs[id], data...)
	for b := c.bufs[id]; len(b) >= xpc.HeaderSize; b = c.bufs[id] {
		h, err := xpc.ParseHeader(b)
		if err != nil {
			return fmt.Errorf("rsdtest: stream %d: %w", id, err)
		}
		if len(b) < h.Size() {
			break
		}
		m, err := xpc.DecodeMessage(b[:h.Size()])
		if err != nil {
			return fmt.Errorf("rsdtest: stream %d: %w", id, err)
		}
		c.msgs[id] = append(c.msgs[id], m)
		c.bufs[id] = b[h.Size():]
	}
	return nil
}

// Next returns the next message on stream, reading frames as needed; a reset of any stream
// while it waits is an error.
func (c *Client) Next(stream uint32) (*xpc.Message, error) {
	for len(c.msgs[stream]) == 0 {
		n := len(c.Resets)
		if _, err := c.ReadFrame(); err != nil {
			return nil, err
		}
		if len(c.Resets) > n {
			r := c.Resets[n]
			return nil, fmt.Errorf("%w: RST_STREAM(%d, %v) while waiting for a message on stream %d", ErrReset, r.Stream, r.Code, stream)
		}
	}
	m := c.msgs[stream][0]
	c.msgs[stream] = c.msgs[stream][1:]
	return m, nil
}

// Pending is how many messages of stream were read and not yet taken by Next.
func (c *Client) Pending(stream uint32) int { return len(c.msgs[stream]) }

// ExpectReset reads frames until the server resets stream; any message on that stream before
// the reset is an error.
func (c *Client) ExpectReset(stream uint32, code http2.ErrCode) error {
	for _, r := range c.Resets {
		if r.Stream == stream {
			return c.checkReset(r, code)
		}
	}
	for {
		if len(c.msgs[stream]) > 0 {
			return fmt.Errorf("rsdtest: message %v on stream %d where a reset was expected", c.msgs[stream][0].Flags, stream)
		}
		n := len(c.Resets)
		if _, err := c.ReadFrame(); err != nil {
			return err
		}
		for _, r := range c.Resets[n:] {
			if r.Stream == stream {
				return c.checkReset(r, code)
			}
		}
	}
}

func (c *Client) checkReset(r Reset, code http2.ErrCode) error {
	if r.Code != code {
		return fmt.Errorf("rsdtest: stream %d reset with %v, want %v", r.Stream, r.Code, code)
	}
	return nil
}

// Ping sends an HTTP/2 PING and reads frames until its ACK arrives.
func (c *Client) Ping(data [8]byte) error {
	if err := c.fr.WritePing(false, data); err != nil {
		return err
	}
	for !c.pingAcks[data] {
		if _, err := c.ReadFrame(); err != nil {
			return err
		}
	}
	delete(c.pingAcks, data)
	return nil
}

// Send writes one message on stream as a single DATA frame (the test keeps it small).
func (c *Client) Send(stream uint32, m *xpc.Message) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	c.sent[0] += int64(len(b))
	c.sent[stream] += int64(len(b))
	return c.fr.WriteData(stream, false, b)
}

// SendFlow writes b on stream in DATA frames within the server's windows, reading the
// server's frames while it waits for credit.
func (c *Client) SendFlow(stream uint32, b []byte) error {
	for len(b) > 0 {
		for c.sendWin(stream) <= 0 {
			if _, err := c.ReadFrame(); err != nil {
				return err
			}
		}
		n := min(len(b), 16384, int(c.sendWin(stream)))
		if err := c.fr.WriteData(stream, false, b[:n]); err != nil {
			return err
		}
		c.sent[0] += int64(n)
		c.sent[stream] += int64(n)
		b = b[n:]
	}
	return nil
}

// sendWin is what the server's windows still allow on stream.
func (c *Client) sendWin(stream uint32) int64 {
	conn := int64(65535) + int64(c.WindowCredit[0]) - c.sent[0]
	st := c.serverInitWin + int64(c.WindowCredit[stream]) - c.sent[stream]
	return min(conn, st)
}
