package tunnel

import (
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
// arrived (Queued) and can batch exactly that without ever waiting for more.
type readAhead struct {
	filled chan chunk // closed after the reader's error is set
	err    error
	queued atomic.Int64 // bytes read and not yet consumed
	cur    chunk
	off    int
	done   chan struct{}
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{filled: make(chan chunk, streamAhead), done: make(chan struct{})}
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

// Read gives what the reader has read, blocking only when nothing has arrived.
func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.cur.buf == nil {
		c, ok := <-ra.filled
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.off = c, 0
	}
	n := copy(p, (*ra.cur.buf)[ra.off:ra.cur.n])
	ra.off += n
	ra.queued.Add(-int64(n))
	if ra.off == ra.cur.n {
		chunkPool.Put(ra.cur.buf)
		ra.cur = chunk{}
	}
	return n, nil
}

// Queued is how many bytes Read can give without blocking.
func (ra *readAhead) Queued() int { return int(ra.queued.Load()) }

// wait waits for the reader goroutine (which ends when the transport is closed) and returns
// the buffers it holds to the pool.
func (ra *readAhead) wait() {
	for c := range ra.filled {
		chunkPool.Put(c.buf)
	}
	<-ra.done
	if ra.cur.buf != nil {
		chunkPool.Put(ra.cur.buf)
		ra.cur = chunk{}
	}
}
