package peertest

import (
	"runtime"
	"testing"
)

// FuzzAllocFixed is the allocation every fuzz input may make whatever its size (buffers,
// goroutines, a connection's setup).
const FuzzAllocFixed = 4 << 20

// BoundAllocs runs fn and fails t if it allocated more than perByte bytes for each of the n
// input bytes plus FuzzAllocFixed: a decoder must not turn a small input into a large
// allocation. It reads process-wide counters, so it suits fuzz targets, whose inputs run one
// at a time in each worker.
func BoundAllocs(t testing.TB, n int, perByte uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	budget := perByte*uint64(n) + FuzzAllocFixed
	if grew := after.TotalAlloc - before.TotalAlloc; grew > budget {
		t.Fatalf("%d input bytes allocated %d bytes (budget %d)", n, grew, budget)
	}
}
