//go:build !linux

package tunnel

import "testing"

func benchKernelBulk(b *testing.B) {}
