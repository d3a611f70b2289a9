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
	// Incoming is the number of decoded messages buffered before reading pauses.
	Incoming int
}

func (o Options) withDefaults() Options {
	if o.SetupTimeout <= 0 {
		o.SetupTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Incoming <= 0 {
		o.Incoming = 64
	}
	return o
}

// Incoming is one message received on a stream.
type Incoming struct {
	Stream uint32
	Msg    *xpc.Message
}

// Conn is one RemoteXPC connection; it is safe for concurrent use.
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

	pmu     sync.Mutex
	pending map[uint64]chan *xpc.Message
	nextID  uint64

	in        chan Incoming
	done      chan struct{}
	closeOnce sync.Once

	// server setup state, touched only by the read loop
	rootOpened, replyOpened bool
	rootReady               chan struct{}
}

// sendStream is the send side of one stream.
type sendStream struct {
	win int64
	mu  sync.Mutex // keeps a message's frames together
}

func newConn(nc net.Conn, server bool, opts Options) *Conn {
	c := &Conn{
		nc:        nc,
		opts:      opts.withDefaults(),
		server:    server,
		connWin:   defaultWindow,
		initWin:   defaultWindow,
		maxFrame:  defaultMaxFrame,
		streams:   map[uint32]*sendStream{},
		pending:   map[uint64]chan *xpc.Message{},
		nextID:    1,
		done:      make(chan struct{}),
		rootReady: make(chan struct{}),
	}
	c.in = make(chan Incoming, c.opts.Incoming)
	c.fcCond = sync.NewCond(&c.fc)
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.fr = http2.NewFramer(nc, c.br)
	c.fr.SetMaxReadFrameSize(defaultMaxFrame)
	return c
}

// Client runs the CDS client setup (remotexpc.md §7.1) on nc and returns the connection.
func Client(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	c := newConn(nc, false, opts)
	deadline := time.Now().Add(c.opts.SetupTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc.SetWriteDeadline(deadline)
	err := c.clientSetup()
	nc.SetWriteDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rsd: client setup: %w", err)
	}
	close(c.rootReady)
	go c.readLoop()
	return c, nil
}

func (c *Conn) clientSetup() error {
	if _, err := c.nc.Write([]byte(ClientPreface)); err != nil {
		return err
	}
	steps := []func() error{
		func() error {
			return c.fr.WriteSettings(
				http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: MaxConcurrentStreams},
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: InitialWindowSize})
		},
		func() error { return c.fr.WriteWindowUpdate(0, ConnWindowIncrement) },
		func() error { return c.writeHeaders(RootChannel) },
		func() error {
			return c.writeMsg(RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet, Body: &xpc.Dict{}})
		},
		func() error { return c.writeHeaders(ReplyChannel) },
		func() error { return c.writeMsg(RootChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypePing}) },
		func() error {
			return c.writeMsg(ReplyChannel, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.FlagOpensReplyChannel})
		},
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
	deadline := time.Now().Add(c.opts.SetupTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc.SetDeadline(deadline)
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
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("rsd: server setup: writing SETTINGS: %w", err)
	}
	go c.readLoop()
	return c, nil
}

// Receive returns the next message that is not a reply to this side's Request.
// A connection's owner must keep receiving: reading pauses while the buffer is full.
func (c *Conn) Receive(ctx context.Context) (Incoming, error) {
	select {
	case in, ok := <-c.in:
		if !ok {
			return Incoming{}, c.Err()
		}
		return in, nil
	case <-ctx.Done():
		return Incoming{}, ctx.Err()
	}
}

// RootReady is closed once the root channel is set up and messages may follow on stream 1.
func (c *Conn) RootReady() <-chan struct{} { return c.rootReady }

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
