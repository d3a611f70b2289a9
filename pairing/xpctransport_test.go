package pairing

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// xpcHandshakeVector is test-vectors.md §9.2 (408 bytes).
const xpcHandshakeVector = "920bb0290101000080010000000000000100000000000000423713420500000000f0000070010000020000006d616e676c6564547970654e616d6500009000002c00000052656d6f746550616972696e672e436f6e74726f6c4368616e6e656c4d657373616765456e76656c6f70650076616c756500000000f0000018010000030000006d6573736167650000f00000c800000001000000706c61696e00000000f00000b4000000010000005f30000000f00000a400000001000000726571756573740000f0000090000000010000005f30000000f00000800000000100000068616e647368616b6500000000f0000068000000010000005f30000000f000005800000002000000686f73744f7074696f6e730000f000002000000001000000617474656d70745061697256657269667900000000200000010000007769726550726f746f636f6c56657273696f6e000030000013000000000000006f726967696e617465644279000000000090000005000000686f73740000000073657175656e63654e756d6265720000004000000000000000000000"

func TestXPCEnvelopeVector(t *testing.T) {
	e := Envelope{Message: PlainRequest(RequestHandshake, Obj{"hostOptions": Obj{"attemptPairVerify": true}, "wireProtocolVersion": WireProtocolVersion}), OriginatedBy: "host"}
	d, err := EnvelopeToXPC(e)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: 1, Body: d}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "XPC envelope", b, xpcHandshakeVector)
	m, err := xpc.DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	back, err := EnvelopeFromXPC(m.Body.(*xpc.Dict))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseMessage(back.Message)
	if err != nil || p.Name != RequestHandshake || back.OriginatedBy != "host" {
		t.Fatalf("%+v %v", p, err)
	}
	if v, ok := p.Body["wireProtocolVersion"].(int64); !ok || v != 19 {
		t.Fatalf("wireProtocolVersion %T %v", p.Body["wireProtocolVersion"], p.Body["wireProtocolVersion"])
	}
}

func TestXPCEnvelopeErrors(t *testing.T) {
	for name, d := range map[string]*xpc.Dict{
		"no type":            xpc.NewDict("value", xpc.NewDict()),
		"no value":           xpc.NewDict("mangledTypeName", EnvelopeTypeName),
		"message not a dict": xpc.NewDict("mangledTypeName", EnvelopeTypeName, "value", xpc.NewDict("message", "x")),
		"odd type":           xpc.NewDict("mangledTypeName", EnvelopeTypeName, "value", xpc.NewDict("message", xpc.NewDict("a", xpc.UUID{}))),
	} {
		if _, err := EnvelopeFromXPC(d); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v", name, err)
		}
	}
	deep := any(Obj{})
	for i := 0; i < maxObjDepth+2; i++ {
		deep = Obj{"a": deep}
	}
	if _, err := EnvelopeToXPC(Envelope{Message: deep.(Obj)}); !errors.Is(err, ErrFrame) {
		t.Fatalf("deep envelope: %v", err)
	}
}

// serveTunnelService accepts RemoteXPC connections and runs the device role on each.
func serveTunnelService(t *testing.T, dev *simDevice) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(func() { cancel(); ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c, err := rsd.Server(ctx, nc, rsd.Options{})
				if err != nil {
					nc.Close()
					return
				}
				defer c.Close()
				if err := SendServiceHello(ctx, c); err != nil {
					return
				}
				_ = NewDevice(NewXPCTransport(c), dev.config()).Serve(ctx)
			}()
		}
	}()
	return ln.Addr().String()
}

func dialTunnelService(t *testing.T, addr string) *XPCTransport {
	t.Helper()
	ctx := ctx10(t)
	c, err := rsd.DialClient(ctx, addr, rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	v, err := ReadServiceHello(ctx, c)
	if err != nil || v != TunnelServiceVersion {
		t.Fatalf("service hello %d %v", v, err)
	}
	return NewXPCTransport(c)
}

// TestXPCSessionSetupThenVerify runs both roles over RemoteXPC (rsd.Conn): pair-setup with
// Trust accepted, then on a new connection pair-verify and encrypted createListener.
func TestXPCSessionSetupThenVerify(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "DEVICE-UDID"), hosts: map[string]ed25519.PublicKey{}}
	addr := serveTunnelService(t, dev)
	cfg := HostConfig{Identity: randomIdentity(t, "HOST-1"), Name: "testhost"}
	ctx := ctx10(t)

	h := NewHost(dialTunnelService(t, addr), cfg)
	if _, err := h.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Verify(ctx); err == nil {
		t.Fatal("unpaired verify succeeded")
	}
	if _, err := h.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if !dev.paired("HOST-1") {
		t.Fatal("device did not store the host")
	}

	h2 := NewHost(dialTunnelService(t, addr), cfg)
	if _, err := h2.Handshake(ctx); err != nil {
		t.Fatal(err)
	}
	psk, err := h2.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h2.Request(ctx, RequestCreateListener, Obj{"key": psk, "transportProtocolType": "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := Uint(res["port"]); p != 49152 {
		t.Fatalf("createListener %v", res)
	}
}

func TestXPCSessionTrustDenied(t *testing.T) {
	dev := &simDevice{id: randomIdentity(t, "D"), hosts: map[string]ed25519.PublicKey{},
		consent: func(context.Context, string) (bool, error) { return false, nil }}
	addr := serveTunnelService(t, dev)
	h := NewHost(dialTunnelService(t, addr), HostConfig{Identity: randomIdentity(t, "H")})
	if _, err := h.Setup(ctx10(t)); !errors.Is(err, ErrTrustDenied) {
		t.Fatalf("%v", err)
	}
	if dev.paired("H") {
		t.Fatal("denied host stored")
	}
}
