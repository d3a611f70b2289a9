package quictunnel_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a connection, listener or tunnel leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
