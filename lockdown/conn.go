package lockdown

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"time"
)

// DefaultTimeout bounds one request/reply exchange (usbmuxd or lockdown) when the caller's
// context has no deadline.
const DefaultTimeout = 30 * time.Second

// bindDeadline makes I/O on nc end by ctx's deadline (or def from now if it has none) and
// as soon as ctx is cancelled. release clears the deadline again.
func bindDeadline(ctx context.Context, nc net.Conn, def time.Duration) (release func()) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(def)
	}
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		nc.SetDeadline(time.Time{})
	}
}

// ctxErr prefers the context's error when it ended: a deadline forced onto the socket by
// cancellation should read "context canceled", not "i/o timeout".
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	// The socket deadline is the context's: it may fire a moment before ctx.Err is set.
	var ne net.Error
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) && errors.As(err, &ne) && ne.Timeout() {
		return context.DeadlineExceeded
	}
	return err
}

// TLSRecordConn wraps c so that Read never returns bytes beyond the end of the TLS record
// being read. A crypto/tls Conn reads ahead into its own buffer; on top of this wrapper it
// consumes exactly the records it processes, so the bytes that follow a close_notify
// (lockdown StopSession, which continues in the clear) or a handshake (the handshake-only
// services of lockdown.md §4.2) stay in the socket for the plain-text reader. It costs an
// extra read per record; use it only where the stream leaves TLS.
func TLSRecordConn(c net.Conn) net.Conn { return &recordConn{Conn: c} }

type recordConn struct {
	net.Conn
	hdr    [5]byte
	nhdr   int // header bytes read so far
	remain int // body bytes of the current record still to read
}

func (c *recordConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.remain == 0 {
		if want := len(c.hdr) - c.nhdr; len(p) > want {
			p = p[:want]
		}
		n, err := c.Conn.Read(p)
		copy(c.hdr[c.nhdr:], p[:n])
		c.nhdr += n
		if c.nhdr == len(c.hdr) {
			c.nhdr = 0
			c.remain = int(binary.BigEndian.Uint16(c.hdr[3:5]))
		}
		return n, err
	}
	if len(p) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.Conn.Read(p)
	c.remain -= n
	return n, err
}
