package shim

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/rsd/rsdtest"
	"github.com/iosmux/iosmux/xpc"
)

// TestShimClientOrderMatrix: every client order of remotexpc.md §7.1, 20 times each, against
// the shim's RSD endpoint, reading every frame: the device's identity arrives unchanged.
func TestShimClientOrderMatrix(t *testing.T) {
	d, _, s := setup(t)
	if err := rsdtest.Matrix(s.RSDAddr().String(), 20, d.Identity()); err != nil {
		t.Fatal(err)
	}
}

// deviceInfo opens the deviceinfo service through the shim and makes one request on it.
func deviceInfo(t *testing.T, s *Shim) (*rsd.Conn, func() error) {
	t.Helper()
	p, _ := s.ServicePort("com.apple.coredevice.deviceinfo")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c, err := rsd.DialClient(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	call := func() error {
		_, err := c.Request(ctx, xpc.NewDict("CoreDevice.featureIdentifier", "com.apple.coredevice.feature.getdeviceinfo"))
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	return c, call
}

// TestClientsShareOneHostIdentity: clients presenting their own, different host UUIDs (as
// pymobiledevice3 and idevice do) share the device through the shim; the device sees only
// the shim's UUID, so its one-host rule never closes the services a client is using.
func TestClientsShareOneHostIdentity(t *testing.T) {
	_, r, s := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, _, err := rsd.Dial(ctx, s.RSDAddr().String(), &xpc.UUID{0xaa})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	svc, call := deviceInfo(t, s)
	b, _, err := rsd.Dial(ctx, s.RSDAddr().String(), &xpc.UUID{0xbb})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Frida sends its host Handshake after the device's: kept from the device too.
	f, err := rsdtest.Dial(s.RSDAddr().String(), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Handshake(rsdtest.Frida, true); err != nil {
		t.Fatal(err)
	}
	f.Send(1, &xpc.Message{Flags: xpc.FlagAlwaysSet | xpc.TypeMsg, ID: 1, Body: rsd.HostHandshake(xpc.UUID{0xcc})})
	f.Ping([8]byte{1})
	// The device has now seen every upstream connection's host Handshake (a third client's
	// arrives on a connection opened after the first two were served).
	c, _, err := rsd.Dial(ctx, s.RSDAddr().String(), &xpc.UUID{0xdd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := call(); err != nil {
		t.Fatalf("service through the shim failed after other clients connected: %v", err)
	}
	select {
	case <-svc.Done():
		t.Fatalf("service connection closed: %v", svc.Err())
	default:
	}
	hosts := r.HostUUIDs()
	if len(hosts) != 1 || hosts[0] != testHostUUID || r.ServiceResets() != 0 {
		t.Fatalf("device saw host UUIDs %v (resets %d), want only the shim's %v", hosts, r.ServiceResets(), testHostUUID)
	}
}

// TestIdleClientDropped: a local client that connects and never finishes its setup is
// dropped after the bound.
func TestIdleClientDropped(t *testing.T) {
	_, _, s := setup(t)
	s.setupTimeout = 300 * time.Millisecond
	for _, sendPreface := range []bool{false, true} {
		nc, err := net.Dial("tcp", s.RSDAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		if sendPreface {
			c := rsdtest.New(nc, 20*time.Second)
			c.Preface(rsdtest.Settings{})
		}
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.Copy(io.Discard, nc)
		nc.Close()
		if err != nil {
			t.Fatalf("preface=%v: idle client not dropped: %v", sendPreface, err)
		}
	}
}
