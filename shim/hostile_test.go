package shim

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/rsd/rsdtest"
	"github.com/iosmux/iosmux/xpc"
	"golang.org/x/net/http2"
)

// partialFlood opens a connection to addr, sets up, and sends on 1000 streams the first
// 8 KiB of a message that claims 200 KiB, never finishing any; it returns the connection.
func partialFlood(t *testing.T, addr string) *rsdtest.Client {
	c, err := rsdtest.Dial(addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Setup(rsdtest.Devicectl, rsdtest.Settings{}); err != nil {
		c.Close()
		return nil
	}
	head, _ := (&xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: 1, Body: xpc.NewDict("pad", make([]byte, 200<<10))}).Encode()
	fr := c.Framer()
	for id := uint32(5); id < 5+2*1000; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true}) != nil ||
			fr.WriteData(id, false, head[:8<<10]) != nil {
			break
		}
	}
	return c
}

// TestPartialMessageFloodIsBounded: 80 local clients each leave unfinished messages on 1000
// streams of the shim's RSD port; the process's heap stays within budget and another
// device's shim keeps serving.
func TestPartialMessageFloodIsBounded(t *testing.T) {
	_, _, victim := setup(t)
	d, _, other := setup(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var flood []*rsdtest.Client
	for range MaxRSDClients + 16 {
		if c := partialFlood(t, victim.RSDAddr().String()); c != nil {
			flood = append(flood, c)
		}
	}
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	// Let the shim take in whatever it will: a PING round trip on each live flood connection.
	for _, c := range flood {
		c.Ping([8]byte{1})
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 256<<20 {
		t.Fatalf("heap grew by %d MiB under the partial-message flood", grew>>20)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, other.RSDAddr().String(), nil)
	if err != nil {
		t.Fatalf("another device's shim during the flood: %v", err)
	}
	c.Close()
	if h.UDID() != d.UDID {
		t.Fatalf("handshake of %s", h.UDID())
	}
}

// TestServiceListenersBounded: a device whose handshake lists more services than MaxServices
// is refused as an upstream instead of making the shim open a listener for each.
func TestServiceListenersBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	services := &xpc.Dict{}
	for i := range MaxServices + 1 {
		services.Set("com.example.s"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i), xpc.NewDict("Port", "1000", "Properties", xpc.NewDict()))
	}
	hs := xpc.NewDict("MessageType", "Handshake", "MessagingProtocolVersion", uint64(5), "UUID", xpc.UUID{1},
		"Properties", xpc.NewDict("UniqueDeviceID", "X"), "Services", services)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c, err := rsd.Server(ctx, nc, rsd.Options{})
				if err != nil {
					return
				}
				defer c.Close()
				go func() {
					for {
						if _, err := c.Receive(ctx); err != nil {
							return
						}
					}
				}()
				rsd.ServeHandshake(ctx, c, hs, true)
				<-ctx.Done()
			}()
		}
	}()
	s, err := New(ctx, "127.0.0.1", testHostUUID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var dialer net.Dialer
	_, err = s.SetUpstream(ctx, dialer.DialContext, "127.0.0.1", ln.Addr().(*net.TCPAddr).Port)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("SetUpstream with %d services: %v", MaxServices+1, err)
	}
	if _, ok := s.ServicePort("com.example.sa0"); ok {
		t.Fatal("a listener was opened anyway")
	}
}

func itoa(i int) string { // strconv-free, for names
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
