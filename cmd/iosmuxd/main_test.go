package main

import (
	"os"
	"testing"
)

// TestMain lets tests run this binary's main as a subprocess (IOSMUXD_RUN_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("IOSMUXD_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
