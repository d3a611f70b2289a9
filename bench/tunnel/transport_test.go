package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTransports checks that a device listener of either transport is reached by dialDevice,
// and that a unix socket's directory is gone after cleanup.
func TestTransports(t *testing.T) {
	defer func() { unixTransport = false }()
	for _, unix := range []bool{false, true} {
		unixTransport = unix
		ln, addr, cleanup, err := listenDevice()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.HasPrefix(addr, unixPrefix); got != unix {
			t.Errorf("unix %v: address %q", unix, addr)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := dialDevice(ctx, addr)
		cancel()
		if err != nil {
			t.Fatalf("unix %v: %v", unix, err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "hi" {
			t.Errorf("unix %v: read %q, %v", unix, b, err)
		}
		ln.Close()
		cleanup()
		if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("socket %s left behind: %v", path, err)
			}
		}
	}
}
