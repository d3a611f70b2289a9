// Package cork holds back a connection's writes and sends them as one: crypto/tls writes each
// record of up to 16 KiB with a write(2) of its own, and a coalescing tunnel pump wants one
// write(2) for the records of a batch of packets instead, as TCP_CORK would give without its
// extra system calls.
package cork

import (
	"net"
	"sync"
)

// Limit is the most a Conn holds: a write that would exceed it sends what is held first, and a
// write larger than Limit goes out on its own.
const Limit = 128 << 10

// buffers lends held writes their buffer until the Flush, so an idle connection holds none.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, Limit); return &b }}

// Conn is a net.Conn whose writes between Hold and Flush leave in as few writes to the
// connection underneath as Limit allows. Outside Hold/Flush every Write goes straight through.
type Conn struct {
	net.Conn
	mu   sync.Mutex
	held bool
	buf  *[]byte // while held and not empty
	err  error   // a held write that failed: the stream lost bytes, so every later Write and Flush returns it
}

// New wraps c; put it under tls.Client or tls.Server so that their records can be held.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

// Write sends p, or appends it to what is held. A held write reports success; a failure to
// send it is reported by the Flush (and every Write after it).
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.held {
		return c.Conn.Write(p)
	}
	if c.buf != nil && len(*c.buf)+len(p) > Limit {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) > Limit {
		return c.write(p)
	}
	if c.buf == nil {
		c.buf = buffers.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// Hold makes the following writes wait for Flush.
func (c *Conn) Hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// Flush sends what is held in one write and lets writes go straight through again.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	if c.err != nil {
		c.release()
		return c.err
	}
	return c.flush()
}

func (c *Conn) flush() error {
	if c.buf == nil {
		return nil
	}
	_, err := c.write(*c.buf)
	c.release()
	return err
}

func (c *Conn) release() {
	if c.buf != nil {
		*c.buf = (*c.buf)[:0]
		buffers.Put(c.buf)
		c.buf = nil
	}
}

// write sends p while held: a failure sticks, since earlier held bytes may be lost with it.
func (c *Conn) write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// Holder is a connection whose writes can be held and flushed together.
type Holder interface {
	Hold()
	Flush() error
}

// Of returns the Holder that c is, or that lies under it (a *tls.Conn, or anything with a
// NetConn method, over a Conn), or nil.
func Of(c net.Conn) Holder {
	for range 4 { // a few layers at most; never loop on a conn that returns itself
		if h, ok := c.(Holder); ok {
			return h
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		next := u.NetConn()
		if next == nil || next == c {
			return nil
		}
		c = next
	}
	return nil
}
