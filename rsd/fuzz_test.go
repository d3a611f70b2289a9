package rsd_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// FuzzServerReader feeds a server connection the CDS client preface and setup followed by
// arbitrary bytes as the peer's frames: no panic, bounded allocation, and the connection ends.
func FuzzServerReader(f *testing.F) {
	f.Add(unhex(f, h1Hex+d1Hex+h3Hex+pingHex+open3Hex))
	f.Add(unhex(f, h1Hex+"00ffff000000000001"))
	f.Add(unhex(f, "000008060000000000"+"0102030405060708"))
	f.Add(unhex(f, "00000408000000000100000000"))
	f.Fuzz(func(t *testing.T, frames []byte) {
		peertest.BoundAllocs(t, len(frames), 64, func() {
			a, b := net.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() {
				a.Write(unhex(t, prefaceHex+settingsHex+windowHex))
				a.Write(frames)
				a.Close()
			}()
			go func() {
				buf := make([]byte, 4096)
				for {
					if _, err := a.Read(buf); err != nil {
						return
					}
				}
			}()
			c, err := rsd.Server(ctx, b, rsd.Options{})
			if err != nil {
				return
			}
			go func() {
				for {
					if _, err := c.Receive(ctx); err != nil {
						return
					}
				}
			}()
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("connection did not end after its peer closed")
			}
		})
	})
}

// FuzzParseHandshake decodes arbitrary bytes as an XPC object and, when it is a dictionary,
// as a device Handshake.
func FuzzParseHandshake(f *testing.F) {
	b, _ := xpc.EncodeObject(testHandshake())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		peertest.BoundAllocs(t, len(b), 256, func() {
			v, err := xpc.DecodeObject(b)
			if err != nil {
				return
			}
			if d, ok := v.(*xpc.Dict); ok {
				if h, err := rsd.ParseHandshake(d); err == nil {
					_ = h.UDID()
				}
			}
		})
	})
}
