package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ioSlack is added to every transfer's duration for its deadlines.
const ioSlack = 20 * time.Second

// xfer is what the receiving end of one transfer saw.
type xfer struct {
	bytes int64
	dur   time.Duration
	err   error
}

func (x xfer) rate() float64 {
	if x.dur <= 0 {
		return 0
	}
	return float64(x.bytes) / x.dur.Seconds()
}

// sendFor writes to c for d, then closes its write side (or all of it).
func sendFor(c net.Conn, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d + ioSlack))
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return fmt.Errorf("send: %w", err)
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// drain reads c to its end, counting from now.
func drain(c net.Conn, d time.Duration) xfer {
	c.SetDeadline(time.Now().Add(d + ioSlack))
	start := time.Now()
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := c.Read(buf)
		n += int64(m)
		if errors.Is(err, io.EOF) {
			return xfer{bytes: n, dur: time.Since(start)}
		}
		if err != nil {
			return xfer{bytes: n, dur: time.Since(start), err: fmt.Errorf("receive: %w", err)}
		}
	}
}

// endpoints serve the device side of transfers: sink reads each connection to its end and
// reports it; source writes for the transfer's duration then closes.
type endpoints struct {
	sink, source net.Listener
	results      chan xfer
	dur          time.Duration
}

func serveEndpoints(sink, source net.Listener, d time.Duration) *endpoints {
	e := &endpoints{sink: sink, source: source, results: make(chan xfer, 4), dur: d}
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() {
				x := drain(c, d)
				c.Close()
				e.results <- x
			}()
		}
	}()
	go func() {
		for {
			c, err := source.Accept()
			if err != nil {
				return
			}
			go func() {
				sendFor(c, d)
				// Wait for the reader's close so the last bytes are not reset away.
				c.SetReadDeadline(time.Now().Add(ioSlack))
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return e
}

func (e *endpoints) close() {
	e.sink.Close()
	e.source.Close()
}

func (e *endpoints) ports() (sink, source int) {
	return portOf(e.sink.Addr()), portOf(e.source.Addr())
}

func portOf(a net.Addr) int {
	_, p, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(p)
	return n
}

// waitSink waits for the sink's report of one transfer.
func (e *endpoints) waitSink() xfer {
	select {
	case x := <-e.results:
		return x
	case <-time.After(e.dur + 2*ioSlack):
		return xfer{err: errors.New("device sink never finished")}
	}
}

// up sends from a connection dial makes to the sink and returns what the sink saw.
func up(dial func() (net.Conn, error), e *endpoints) xfer {
	c, err := dial()
	if err != nil {
		return xfer{err: err}
	}
	defer c.Close()
	if err := sendFor(c, e.dur); err != nil {
		return xfer{err: err}
	}
	return e.waitSink()
}

// down reads from the source through a connection dial makes.
func down(dial func() (net.Conn, error), d time.Duration) xfer {
	c, err := dial()
	if err != nil {
		return xfer{err: err}
	}
	defer c.Close()
	return drain(c, d)
}

// cpuSeconds is a process's user+system CPU time so far, from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

func numCPU() int { return runtime.NumCPU() }
