package sim

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/rsd/rsdtest"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/xpc"
)

// TestRSDClientOrderMatrix: every client order of remotexpc.md §7.1, 20 times each, against
// the simulated device's RSD endpoint, reading every frame.
func TestRSDClientOrderMatrix(t *testing.T) {
	d, r := startRSD(t, "", RSDOptions{})
	if err := rsdtest.Matrix(r.Addr().String(), 20, d.Identity()); err != nil {
		t.Fatal(err)
	}
}

// hostClient connects to the RSD endpoint as pymobiledevice3 does, presenting host UUID u.
func hostClient(t *testing.T, r *RSD, u xpc.UUID) *rsd.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := rsd.Dial(ctx, r.Addr().String(), &u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deviceInfoConn opens the deviceinfo service and checks one request works.
func deviceInfoConn(t *testing.T, r *RSD) *rsd.Conn {
	t.Helper()
	p, _ := r.Port("com.apple.coredevice.deviceinfo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rsd.DialClient(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := getDeviceInfo(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func getDeviceInfo(ctx context.Context, c *rsd.Conn) error {
	_, err := c.Request(ctx, xpc.NewDict(
		"CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdeviceinfo",
		"CoreDevice.invocationIdentifier", "62419FC1-5ABF-4D96-BCA8-7A5F6F9A69EE",
		"CoreDevice.input", xpc.NewDict()))
	return err
}

// waitHosts waits until the endpoint has seen n host UUIDs (the host Handshake is read
// asynchronously to the client's Dial).
func waitHosts(t *testing.T, r *RSD, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(r.HostUUIDs()) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("endpoint saw host UUIDs %v, want %d", r.HostUUIDs(), n)
		}
	}
}

// TestOneHostRule: a second RSD peer with a different host UUID closes every service
// connection (iOS 27.2); one with the same UUID, or a peer that sends none, does not.
func TestOneHostRule(t *testing.T) {
	_, r := startRSD(t, "", RSDOptions{})
	a, b := xpc.UUID{0xa}, xpc.UUID{0xb}
	hostClient(t, r, a)
	waitHosts(t, r, 1)
	svc := deviceInfoConn(t, r)
	hostClient(t, r, a)
	rsdtestPeer(t, r) // go-ios and appium send no host Handshake
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := getDeviceInfo(ctx, svc); err != nil || r.ServiceResets() != 0 {
		t.Fatalf("same host UUID again: service %v, resets %d", err, r.ServiceResets())
	}
	hostClient(t, r, b)
	waitHosts(t, r, 2)
	select {
	case <-svc.Done():
	case <-ctx.Done():
		t.Fatal("a second host UUID left the service connection open")
	}
	if r.ServiceResets() != 1 {
		t.Fatalf("resets %d", r.ServiceResets())
	}
}

// rsdtestPeer does a devicectl-order setup without a host Handshake and holds the connection.
func rsdtestPeer(t *testing.T, r *RSD) {
	t.Helper()
	c, err := rsdtest.Dial(r.Addr().String(), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Handshake(rsdtest.Devicectl, true); err != nil {
		t.Fatal(err)
	}
}

// TestXPCServiceToleratesShortArraysAndLogsDrops: a request whose array byte_len leaves out
// the count is answered, and a connection dropped for garbage is logged with its cause.
func TestXPCServiceToleratesShortArraysAndLogsDrops(t *testing.T) {
	var logs peertest.LogBuffer
	d := NewDevice(profile.Default(), "", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	r, err := d.ServeRSD(context.Background(), TCPListen("127.0.0.1"), 0, RSDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	p, _ := r.Port("com.apple.coredevice.deviceinfo")
	c, err := rsdtest.Dial(net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Setup(rsdtest.Devicectl, rsdtest.Settings{}); err != nil {
		t.Fatal(err)
	}
	req := &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg | xpc.FlagWantsReply, ID: 1, Body: xpc.NewDict(
		"CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdeviceinfo",
		"CoreDevice.invocationIdentifier", "62419FC1-5ABF-4D96-BCA8-7A5F6F9A69EE",
		"CoreDevice.input", xpc.NewDict("arguments", []xpc.Value{"a", "b"}))}
	wire, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Shorten the array's byte_len by the 4-byte count: the array's type code is followed
	// by byte_len 4+2×12=28 (two short strings) and count 2.
	i := bytes.Index(wire, []byte{0x00, 0xe0, 0x00, 0x00, 28, 0, 0, 0, 2, 0, 0, 0})
	if i < 0 {
		t.Fatal("array not found in the encoded request")
	}
	wire[i+4] = 24
	if err := c.Framer().WriteData(1, false, wire); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSetup(); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Next(3)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := reply.Body.(*xpc.Dict).Dict("CoreDevice.output"); !ok || reply.ID != 1 {
		t.Fatalf("reply %v %#v", reply.Flags, reply.Body)
	}
	// Garbage: a wrapper with a bad magic drops the connection, with the cause in the log.
	c.Framer().WriteData(1, false, bytes.Repeat([]byte{0xee}, 24))
	for {
		if _, err := c.ReadFrame(); err != nil {
			break
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "connection dropped"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no drop logged:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "com.apple.coredevice.deviceinfo") || !strings.Contains(logs.String(), "magic") {
		t.Fatalf("drop logged without service or cause:\n%s", logs.String())
	}
}
