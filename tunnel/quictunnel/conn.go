package quictunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/iosmux/iosmux/tunnel"
)

// Conn is one QUIC tunnel connection. As a net.Conn it carries datagrams: each Read returns one
// DATAGRAM frame's payload and each Write sends p as one DATAGRAM frame (give it to tunnel.Start
// with Options.Datagrams). The CDTunnel handshake runs on Stream.
type Conn struct {
	qc     *quic.Conn
	stream *quic.Stream
	ln     *quic.Listener // server side: the listener whose socket the connection uses

	mu         sync.Mutex
	readCtx    context.Context
	cancelRead context.CancelFunc

	sentDropped, recvDropped atomic.Uint64
	closed                   atomic.Bool
	closeOnce                sync.Once
	closeErr                 error
}

func newConn(qc *quic.Conn, st *quic.Stream, ln *quic.Listener) *Conn {
	c := &Conn{qc: qc, stream: st, ln: ln}
	c.readCtx, c.cancelRead = context.WithCancel(context.Background())
	return c
}

// Stream is the first bidirectional stream, where the CDTunnel handshake runs.
func (c *Conn) Stream() io.ReadWriter { return c.stream }

// Read returns the payload of the next datagram from the peer. Datagrams larger than p or than
// MaxDatagramFrameSize are dropped (and counted in Dropped) rather than cut.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		ctx := c.readCtx
		c.mu.Unlock()
		dg, err := c.qc.ReceiveDatagram(ctx)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				switch {
				case c.closed.Load():
					return 0, net.ErrClosed
				case errors.Is(cerr, context.DeadlineExceeded):
					return 0, os.ErrDeadlineExceeded
				}
				continue // SetReadDeadline replaced the context
			}
			return 0, c.readErr(err)
		}
		if len(dg) > MaxDatagramFrameSize || len(dg) > len(p) {
			c.recvDropped.Add(1)
			continue
		}
		return copy(p, dg), nil
	}
}

// readErr turns the peer's orderly close into io.EOF, as a TCP transport ends.
func (c *Conn) readErr(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == 0 {
		return io.EOF
	}
	return err
}

// Write sends p as one datagram. A datagram larger than the connection can carry now is
// dropped: Write then returns an error wrapping tunnel.ErrPacketDropped and the tunnel goes on.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) > MaxDatagramFrameSize {
		c.sentDropped.Add(1)
		return 0, fmt.Errorf("quictunnel: datagram of %d bytes over %d: %w", len(p), MaxDatagramFrameSize, tunnel.ErrPacketDropped)
	}
	err := c.qc.SendDatagram(p)
	var tl *quic.DatagramTooLargeError
	if errors.As(err, &tl) {
		c.sentDropped.Add(1)
		return 0, fmt.Errorf("quictunnel: datagram of %d bytes over %d: %w", len(p), tl.MaxDatagramPayloadSize, tunnel.ErrPacketDropped)
	}
	if err != nil {
		return 0, c.readErr(err)
	}
	return len(p), nil
}

// MaxDatagram is the largest payload one datagram can carry now (the packet size in use less
// QUIC's overhead, at most MaxDatagramFrameSize): the tunnel's MTU must not exceed it.
func (c *Conn) MaxDatagram() int {
	// quic-go reports the limit only in its refusal; a probe over the largest frame it could
	// ever send is always refused and sends nothing.
	err := c.qc.SendDatagram(make([]byte, 1<<14+1))
	var tl *quic.DatagramTooLargeError
	if errors.As(err, &tl) {
		return int(min(tl.MaxDatagramPayloadSize, MaxDatagramFrameSize))
	}
	return 0
}

// Dropped counts the datagrams dropped for their size: sent (too large to send) and received
// (too large to take).
func (c *Conn) Dropped() (sent, received uint64) {
	return c.sentDropped.Load(), c.recvDropped.Load()
}

// PeerSPKI is the SubjectPublicKeyInfo of the peer's certificate (nil if it sent none).
func (c *Conn) PeerSPKI() []byte {
	certs := c.qc.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	return certs[0].RawSubjectPublicKeyInfo
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.qc.Context().Done() }

// Close ends the connection (an orderly CONNECTION_CLOSE) and, on the server side, the listener.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.mu.Lock()
		c.cancelRead()
		c.mu.Unlock()
		c.closeErr = c.qc.CloseWithError(0, "")
		if c.ln != nil {
			c.ln.Close()
		}
	})
	return c.closeErr
}

// LocalAddr is the local UDP address.
func (c *Conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// SetDeadline sets the read deadline (writes queue a datagram and have none).
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline makes a waiting and any later Read fail with os.ErrDeadlineExceeded at t
// (the zero time: never).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cancelRead
	if t.IsZero() {
		c.readCtx, c.cancelRead = context.WithCancel(context.Background())
	} else {
		c.readCtx, c.cancelRead = context.WithDeadline(context.Background(), t)
	}
	old()
	return nil
}

// SetWriteDeadline does nothing: a Write only queues a datagram (quic-go holds at most 32).
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
