package tunnel

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
)

// streamChunk is the size of each transport read-ahead buffer: one full TLS record (a TLS read
// never gives more), and what an idle tunnel's blocked reader holds.
const streamChunk = 16 << 10

// streamAhead is how many chunks of read-ahead a tunnel may hold beyond the one being read.
const streamAhead = 16

// chunkPool holds read-ahead buffers shared by all tunnels, so an idle tunnel holds only the
// one its reader blocks on.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk); return &b }}

type chunk struct {
	buf *[]byte
	n   int
}

// readAhead reads the transport on its own goroutine, so that decrypting the stream overlaps
// writing packets to the device, and so that the receive loop knows how much has already
// arrived (Buffered) and can batch exactly that without ever waiting for more. A PacketReader
// reads it in place (Peek, Read, Discard, as on a bufio.Reader): packets are copied once, from
// the chunk the transport filled into the device's buffer.
type readAhead struct {
	filled chan chunk // closed after the reader's error is set
	err    error
	queued atomic.Int64 // bytes read and not yet consumed
	held   []chunk      // chunks taken from filled; the first is being read at off
	off    int
	hdr    [IPv6HeaderLen]byte // a peeked header that spans chunks
	done   chan struct{}
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{filled: make(chan chunk, streamAhead), done: make(chan struct{}), held: make([]chunk, 0, 4)}
	go ra.run(r)
	return ra
}

func (ra *readAhead) run(r io.Reader) {
	defer close(ra.done)
	defer close(ra.filled)
	for {
		b := chunkPool.Get().(*[]byte)
		n, err := r.Read(*b)
		if n > 0 {
			ra.queued.Add(int64(n))
			ra.filled <- chunk{buf: b, n: n}
		} else {
			chunkPool.Put(b)
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

// take moves the next chunk the reader filled into held, blocking; false once it has stopped.
func (ra *readAhead) take() bool {
	c, ok := <-ra.filled
	if !ok {
		return false
	}
	ra.held = append(ra.held, c)
	return true
}

// have is how many held bytes are not yet consumed.
func (ra *readAhead) have() int {
	n := -ra.off
	for _, c := range ra.held {
		n += c.n
	}
	return n
}

// Peek returns the next n (at most IPv6HeaderLen) bytes without consuming them, blocking until
// they have arrived; fewer, with the transport's error, if it ends first.
func (ra *readAhead) Peek(n int) ([]byte, error) {
	if n > len(ra.hdr) {
		return nil, bufio.ErrBufferFull
	}
	for ra.have() < n {
		if !ra.take() {
			return ra.gather(ra.have()), ra.err
		}
	}
	return ra.gather(n), nil
}

// gather returns the next n held bytes: in place when one chunk holds them all, else copied
// into hdr.
func (ra *readAhead) gather(n int) []byte {
	if len(ra.held) == 0 {
		return nil
	}
	if c := ra.held[0]; c.n-ra.off >= n {
		return (*c.buf)[ra.off : ra.off+n]
	}
	out, off := ra.hdr[:0], ra.off
	for _, c := range ra.held {
		k := min(n-len(out), c.n-off)
		out = append(out, (*c.buf)[off:off+k]...)
		off = 0
		if len(out) == n {
			break
		}
	}
	return out
}

// Read gives what the reader has read, blocking only when nothing has arrived.
func (ra *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(ra.held) == 0 && !ra.take() {
		return 0, ra.err
	}
	return ra.consume(p, len(p)), nil
}

// Discard skips n bytes, blocking until they have arrived.
func (ra *readAhead) Discard(n int) (int, error) {
	d := 0
	for d < n {
		if len(ra.held) == 0 && !ra.take() {
			return d, ra.err
		}
		d += ra.consume(nil, n-d)
	}
	return d, nil
}

// consume takes up to n bytes from the first held chunk (copied into p unless p is nil) and
// returns the chunk to the pool once it is used up.
func (ra *readAhead) consume(p []byte, n int) int {
	c := ra.held[0]
	k := min(n, c.n-ra.off)
	if p != nil {
		copy(p, (*c.buf)[ra.off:ra.off+k])
	}
	ra.off += k
	ra.queued.Add(-int64(k))
	if ra.off == c.n {
		chunkPool.Put(c.buf)
		copy(ra.held, ra.held[1:])
		ra.held[len(ra.held)-1] = chunk{}
		ra.held = ra.held[:len(ra.held)-1]
		ra.off = 0
	}
	return k
}

// Buffered is how many bytes Read gives without blocking.
func (ra *readAhead) Buffered() int { return int(ra.queued.Load()) }

// wait waits for the reader goroutine (which ends when the transport is closed) and returns
// the buffers it holds to the pool.
func (ra *readAhead) wait() {
	for c := range ra.filled {
		chunkPool.Put(c.buf)
	}
	<-ra.done
	for _, c := range ra.held {
		chunkPool.Put(c.buf)
	}
	ra.held = ra.held[:0]
}
