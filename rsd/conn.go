// Package rsd is RemoteXPC over prior-knowledge h2c, in both roles, and the RSD handshake.
package rsd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// Stream ids of the two RemoteXPC channels (remotexpc.md §1).
const (
	RootChannel  uint32 = 1
	ReplyChannel uint32 = 3
)

// Flow-control numbers CDS uses (remotexpc.md §6, §7.1).
const (
	MaxConcurrentStreams = 100
	InitialWindowSize    = 1 << 20
	// ConnWindowIncrement raises the connection window from 65535 to InitialWindowSize.
	ConnWindowIncrement = InitialWindowSize - 65535
	defaultWindow       = 65535
	defaultMaxFrame     = 16384
)

// Limits on what a peer may make a connection hold (docs/limits.md).
const (
	// DefaultMaxMessageSize bounds one XPC message. UNCONFIRMED: the largest message a real
	// device sends; 64 MiB leaves room for big CoreDevice replies.
	DefaultMaxMessageSize = 64 << 20
	// DefaultMaxPartialBytes bounds the bytes of unfinished messages held across all streams.
	DefaultMaxPartialBytes = 64 << 20
	// maxQueuedControl bounds control frames (PING and SETTINGS acks, resets) waiting for a
	// peer that does not read; past it the connection fails.
	maxQueuedControl = 1024
)

// ClientPreface is the 24-byte HTTP/2 connection preface.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Errors a connection returns.
var (
	ErrClosed     = errors.New("rsd: connection closed")
	ErrBadPreface = errors.New("rsd: bad HTTP/2 client preface")
)

// Options tune a connection; the zero value gives CDS's behaviour with bounded waits.
type Options struct {
	// SetupTimeout bounds the preface exchange (server) and the setup writes (client).
	SetupTimeout time.Duration
	// WriteTimeout bounds each frame write.
	WriteTimeout time.Duration
	// MaxMessageSize bounds one incoming XPC message; 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxPartialBytes bounds unfinished incoming messages; 0 means DefaultMaxPartialBytes.
	MaxPartialBytes int
}

func (o Options) withDefaults() Options {
	if o.SetupTimeout <= 0 {
		o.SetupTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.MaxPartialBytes <= 0 {
		o.MaxPartialBytes = DefaultMaxPartialBytes
	}
	o.MaxPartialBytes = max(o.MaxPartialBytes, o.MaxMessageSize) // one message must fit
	return o
}

// Incoming is one message received on a stream.
type Incoming struct {
	Stream uint32
	Msg    *xpc.Message
}

// Conn is one RemoteXPC connection; it is safe for concurrent use. One goroutine reads and
// never writes; control frames go out through a writer goroutine, messages from the
// goroutine that sends them once the peer's windows allow.
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	fr     *http2.Framer
	opts   Options
	server bool

	wmu sync.Mutex // one frame write at a time

	fc       sync.Mutex // guards the send windows below
	fcCond   *sync.Cond
	connWin  int64
	initWin  int64
	maxFrame int
	streams  map[uint32]*sendStream
	closeErr error

	ctl  control  // control frames and window credit waiting for the writer
	recv recvSide // receive windows, reassembly and the message queue

	pmu     sync.Mutex
	pending map[uint64]chan *xpc.Message
	nextID  uint64

	done      chan struct{}
	closeOnce sync.Once

	setup serverSetup
}

// sendStream is the send side of one stream.
type sendStream struct {
	win int64
	mu  sync.Mutex // keeps a message's frames together
}

func newConn(nc net.Conn, server bool, opts Options) *Conn {
	c := &Conn{
		nc:       nc,
		opts:     opts.withDefaults(),
		server:   server,
		connWin:  defaultWindow,
		initWin:  defaultWindow,
		maxFrame: defaultMaxFrame,
		streams:  map[uint32]*sendStream{},
		pending:  map[uint64]chan *xpc.Message{},
		nextID:   1,
		done:     make(chan struct{}),
	}
	c.fcCond = sync.NewCond(&c.fc)
	c.ctl.init()
	c.recv.init()
	c.setup.init(server)
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.fr = http2.NewFramer(nc, c.br)
	c.fr.SetMaxReadFrameSize(defaultMaxFrame)
	return c
}

// start runs the reader and the control writer.
func (c *Conn) start() {
	go c.readLoop()
	go c.writeLoop()
}

// setupDeadline is when a setup phase must be over.
func (c *Conn) setupDeadline(ctx context.Context) time.Time {
	deadline := time.Now().Add(c.opts.SetupTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return deadline
}

// Client runs the CDS client setup (remotexpc.md §7.1) on nc and returns the connection.
func Client(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	c := newConn(nc, false, opts)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc.SetWriteDeadline(c.setupDeadline(ctx))
	err := c.clientSetup()
	nc.SetWriteDeadline(time.Time{})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rsd: client setup: %w", err)
	}
	c.start()
	return c, nil
}

// clientSetup writes the whole client setup in devicectl's order without waiting; the
// peer's default 65535-byte windows cover it.
func (c *Conn) clientSetup() error {
	if _, err := c.nc.Write([]byte(ClientPreface)); err != nil {
		return err
	}
	msg := func(stream uint32, m *xpc.Message) func() error {
		return func() error {
			b, err := m.Encode()
			if err != nil {
				return err
			}
			c.takeWindow(stream, len(b))
			return c.fr.WriteData(stream, false, b)
		}
	}
	steps := []func() error{
		func() error {
			return c.fr.WriteSettings(
				http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: MaxConcurrentStreams},
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: InitialWindowSize})
		},
		func() error { return c.fr.WriteWindowUpdate(0, ConnWindowIncrement) },
		func() error { return c.writeHeadersFrame(RootChannel) },
		msg(RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet, Body: &xpc.Dict{}}),
		func() error { return c.writeHeadersFrame(ReplyChannel) },
		msg(RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypePing}),
		msg(ReplyChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.FlagOpensReplyChannel}),
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// Server reads the client preface on nc, sends the device SETTINGS and serves the connection.
// The stream-1 and stream-3 setup messages go out as soon as the client opens each stream.
func Server(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	c := newConn(nc, true, opts)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc.SetDeadline(c.setupDeadline(ctx))
	var pre [len(ClientPreface)]byte
	if _, err := io.ReadFull(c.br, pre[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("rsd: server setup: reading preface: %w", err)
	}
	if string(pre[:]) != ClientPreface {
		nc.Close()
		return nil, fmt.Errorf("rsd: server setup: %w", ErrBadPreface)
	}
	err := c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: InitialWindowSize})
	if err == nil {
		err = c.fr.WriteWindowUpdate(0, ConnWindowIncrement)
	}
	nc.SetDeadline(time.Time{})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rsd: server setup: writing SETTINGS: %w", err)
	}
	c.start()
	return c, nil
}

// Receive returns the next message that is not a reply to this side's Request, in arrival
// order. Taking a message returns its bytes to the peer's send window, so a connection's
// owner must keep receiving or the peer stops sending.
func (c *Conn) Receive(ctx context.Context) (Incoming, error) {
	return c.recv.take(ctx, c)
}

// Ready is closed once both channels are set up: for a server, once it has sent its stream-1
// and stream-3 setup messages (so the client has opened both); for a client, at once.
func (c *Conn) Ready() <-chan struct{} { return c.setup.ready }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	c.fc.Lock()
	defer c.fc.Unlock()
	return c.closeErr
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

// LocalAddr and RemoteAddr are the underlying socket's addresses.
func (c *Conn) LocalAddr() net.Addr  { return c.nc.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// fail ends the connection with err, once.
func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		c.fc.Lock()
		c.closeErr = err
		c.fcCond.Broadcast()
		c.fc.Unlock()
		c.nc.Close()
		close(c.done)
	})
}
