package shim

import (
	"io"
	"net"
	"sync"
)

// pipeBuffer is the copy buffer when the kernel cannot move the bytes itself (an end inside a
// userspace stack): large, so each side sees few, full writes.
const pipeBuffer = 256 << 10

var pipeBuffers = sync.Pool{New: func() any { b := make([]byte, pipeBuffer); return &b }}

// pipe copies both ways until either side ends, then closes both.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		relay(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}

// relay copies src to dst until src ends. Between two kernel TCP sockets (the local client and
// a kernel-TUN tunnel's connection) io.Copy reaches (*net.TCPConn).ReadFrom, which splices on
// Linux: the bytes never enter this process. Otherwise it copies through a large pooled
// buffer, hiding both ends' ReaderFrom/WriterTo so their small default buffers are not used.
func relay(dst, src net.Conn) (int64, error) {
	_, dt := dst.(*net.TCPConn)
	_, st := src.(*net.TCPConn)
	if dt && st {
		return io.Copy(dst, src)
	}
	bp := pipeBuffers.Get().(*[]byte)
	defer pipeBuffers.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}
