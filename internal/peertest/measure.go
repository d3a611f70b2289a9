package peertest

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// ProcessCPU is this process's user+system CPU time, for benchmarks that report CPU per unit.
func ProcessCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TimedPush writes total bytes to c in 64 KiB writes, closes it, waits for the reader's count on
// got (which must be total) and returns the time from the first write.
func TimedPush(tb testing.TB, c io.WriteCloser, got <-chan int64, total int) time.Duration {
	tb.Helper()
	buf := make([]byte, 64<<10)
	start := time.Now()
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	c.Close()
	if n := <-got; n != int64(total) {
		tb.Fatalf("reader got %d of %d bytes", n, total)
	}
	return time.Since(start)
}
