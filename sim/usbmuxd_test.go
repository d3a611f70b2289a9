package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/cork"
	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
)

// Test services reachable through StartService.
const (
	testEchoTLS   = "com.iosmux.test.echo"
	testEchoClear = "com.iosmux.test.echo.clear"
	testHSOnly    = "com.apple.testmanagerd.lockdown" // a handshake-only name (lockdown.md §4.2)
)

// echoService answers every line with "<udid> <line>".
func echoService(d *Device, ctx context.Context, nc net.Conn) {
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(nc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(nc, "%s %s", d.UDID, line); err != nil {
			return
		}
	}
}

func init() {
	lockdownServices[testEchoTLS] = lockdownService{SSL: true, Serve: echoService}
	lockdownServices[testEchoClear] = lockdownService{SSL: false, Serve: echoService}
	lockdownServices[testHSOnly] = lockdownService{SSL: true, Serve: echoService}
}

// socketDir returns a short temporary directory (Unix socket paths are limited to 108 bytes).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "iosmux-mux")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startUsbmuxd runs a simulated usbmuxd on a Unix socket with n plugged devices.
func startUsbmuxd(t *testing.T, n int) (*Usbmuxd, []*Device, string) {
	t.Helper()
	u := NewUsbmuxd(context.Background(), UsbmuxdOptions{})
	t.Cleanup(u.Close)
	path := filepath.Join(socketDir(t), "usbmuxd")
	if _, err := u.ListenUnix(path); err != nil {
		t.Fatal(err)
	}
	var devs []*Device
	for i := range n {
		seed := ""
		if i > 0 {
			seed = fmt.Sprintf("dev%d", i)
		}
		d := NewDevice(profile.Default(), seed, nil)
		u.Plug(d)
		devs = append(devs, d)
	}
	return u, devs, path
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newMux(t *testing.T, path string) *lockdown.Mux {
	t.Helper()
	m, err := lockdown.NewMux("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pairDevice pairs with d through the usbmuxd and returns the saved record.
func pairDevice(t *testing.T, m *lockdown.Mux, d *Device) (*pairrecord.Record, lockdown.Device) {
	t.Helper()
	ctx := testCtx(t)
	dev, err := m.FindDevice(ctx, d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m.Pair(ctx, dev, lockdown.PairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rec, dev
}

func TestUsbmuxdListDevices(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 3)
	got, err := newMux(t, path).ListDevices(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(devs) {
		t.Fatalf("%d devices, want %d", len(got), len(devs))
	}
	seen := map[uint32]bool{}
	for i, g := range got {
		if g.UDID != devs[i].UDID || g.ConnectionType != "USB" || g.Properties.ProductID != USBProductIDiPhone || seen[g.ID] {
			t.Fatalf("device %d: %+v, want UDID %s", i, g, devs[i].UDID)
		}
		seen[g.ID] = true
	}
}

func TestUsbmuxdListenPlugUnplug(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	ctx := testCtx(t)
	l, err := newMux(t, path).Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next := func() lockdown.Event {
		t.Helper()
		select {
		case ev, ok := <-l.Events():
			if !ok {
				t.Fatalf("events closed: %v", l.Err())
			}
			return ev
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return lockdown.Event{}
	}
	// The device already present is announced first.
	if ev := next(); ev.Type != lockdown.MsgAttached || ev.Device.UDID != devs[0].UDID {
		t.Fatalf("first event %+v", ev)
	}
	d2 := NewDevice(profile.Default(), "plugged-later", nil)
	id2 := u.Plug(d2)
	if ev := next(); ev.Type != lockdown.MsgAttached || ev.Device.UDID != d2.UDID || ev.Device.ID != id2 {
		t.Fatalf("plug event %+v (id %d)", ev, id2)
	}
	// SavePairRecord naming the device announces it as Paired.
	if err := newMux(t, path).SavePairRecord(ctx, d2.UDID, id2, &pairrecord.Record{HostID: "H"}); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Type != lockdown.MsgPaired || ev.Device.ID != id2 {
		t.Fatalf("paired event %+v", ev)
	}
	// An open lockdown connection to the device must be closed by Unplug.
	c, err := newMux(t, path).Lockdown(ctx, id2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.QueryType(ctx); err != nil {
		t.Fatal(err)
	}
	if !u.Unplug(d2) {
		t.Fatal("Unplug: not attached")
	}
	if ev := next(); ev.Type != lockdown.MsgDetached || ev.Device.ID != id2 {
		t.Fatalf("unplug event %+v", ev)
	}
	if _, err := c.QueryType(ctx); err == nil {
		t.Fatal("lockdown connection survived Unplug")
	}
	// Re-plugging gives a new DeviceID, as usbmuxd does.
	if id3 := u.Plug(d2); id3 == id2 {
		t.Fatal("re-plug reused the DeviceID")
	}
	if ev := next(); ev.Type != lockdown.MsgAttached || ev.Device.UDID != d2.UDID {
		t.Fatalf("re-plug event %+v", ev)
	}
	l.Close()
	if _, ok := <-l.Events(); ok {
		t.Fatal("events still open after Close")
	}
}

func TestListenEndsWithContext(t *testing.T) {
	_, _, path := startUsbmuxd(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := newMux(t, path).Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range l.Events() {
	}
	if !errors.Is(l.Err(), context.Canceled) {
		t.Fatalf("Err %v, want context.Canceled", l.Err())
	}
}

func TestPairSessionAndValues(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	d := devs[0]
	m := newMux(t, path)
	ctx := testCtx(t)
	dev, err := m.FindDevice(ctx, d.UDID)
	if err != nil {
		t.Fatal(err)
	}

	// Before pairing: the reduced set, session-only keys prohibited, no record in usbmuxd.
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if typ, err := c.QueryType(ctx); err != nil || typ != lockdown.QueryTypeNormal {
		t.Fatalf("QueryType %q %v", typ, err)
	}
	pre, err := c.GetValues(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pre) != len(d.LockdownValues(false)) || pre["SerialNumber"] != nil || pre["ProductVersion"] != d.ProductVersion {
		t.Fatalf("pre-session GetValue: %d keys", len(pre))
	}
	if _, err := c.GetValue(ctx, "", "SerialNumber"); !errors.Is(err, lockdown.ErrGetProhibited) {
		t.Fatalf("SerialNumber before session: %v", err)
	}
	if _, err := m.ReadPairRecord(ctx, d.UDID); !errors.Is(err, pairrecord.ErrNotFound) {
		t.Fatalf("ReadPairRecord before pairing: %v", err)
	}

	rec, err := m.Pair(ctx, dev, lockdown.PairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.EscrowBag) == 0 || rec.SystemBUID != u.BUID() || rec.WiFiMACAddress != d.WiFiAddress {
		t.Fatalf("paired record %v", rec)
	}
	if ids := d.PairedHostIDs(); len(ids) != 1 || ids[0] != rec.HostID {
		t.Fatalf("device trusts %v, want %s", ids, rec.HostID)
	}
	stored, err := m.ReadPairRecord(ctx, d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.HostID != rec.HostID || string(stored.HostPrivateKey) != string(rec.HostPrivateKey) {
		t.Fatal("usbmuxd holds another record than the one paired")
	}

	// Session on the same connection: TLS, then the full dictionary.
	if err := c.StartSession(ctx, stored); err != nil {
		t.Fatal(err)
	}
	full, err := c.GetValues(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(full) != len(d.LockdownValues(true)) || full["SerialNumber"] != d.SerialNumber {
		t.Fatalf("in-session GetValue: %d keys", len(full))
	}
	if v, err := c.GetValue(ctx, "com.apple.security.mac.amfi", "DeveloperModeStatus"); err != nil || v != true {
		t.Fatalf("amfi DeveloperModeStatus %v %v", v, err)
	}
	if _, err := c.GetValue(ctx, "", "NoSuchKey"); !errors.Is(err, lockdown.ErrMissingValue) {
		t.Fatalf("NoSuchKey: %v", err)
	}
	// StopSession returns to the clear protocol on the same connection.
	if err := c.StopSession(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetValue(ctx, "", "SerialNumber"); !errors.Is(err, lockdown.ErrGetProhibited) {
		t.Fatalf("SerialNumber after StopSession: %v", err)
	}
	if v, err := c.GetString(ctx, "", "ProductType"); err != nil || v != d.ProductType {
		t.Fatalf("ProductType after StopSession: %q %v", v, err)
	}
	// And a second session works.
	if err := c.StartSession(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetString(ctx, "", "SerialNumber"); err != nil || v != d.SerialNumber {
		t.Fatalf("SerialNumber in second session: %q %v", v, err)
	}
}

func TestStartSessionUnknownHost(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 1)
	d := devs[0]
	m := newMux(t, path)
	ctx := testCtx(t)
	dev, _ := m.FindDevice(ctx, d.UDID)
	// A well-formed record the device never saw.
	stranger, err := pairrecord.New(d.DevicePublicKeyPEM(), pairrecord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.StartSession(ctx, stranger)
	var le *lockdown.Error
	if !errors.Is(err, lockdown.ErrInvalidHostID) || !errors.As(err, &le) || le.Request != "StartSession" {
		t.Fatalf("StartSession with unknown host: %v", err)
	}
	if !strings.Contains(err.Error(), "StartSession") || !strings.Contains(err.Error(), "not paired") {
		t.Fatalf("message %q names neither stage nor cause", err)
	}
}

// TestSessionRejectsForeignCertificate: the right HostID with another host's certificate
// must not get a session.
func TestSessionRejectsForeignCertificate(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 1)
	m := newMux(t, path)
	rec, dev := pairDevice(t, m, devs[0])
	other, err := pairrecord.New(devs[0].DevicePublicKeyPEM(), pairrecord.Options{HostID: rec.HostID})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.StartSession(ctx, other)
	if err == nil {
		if _, err = c.GetValues(ctx, ""); err == nil {
			t.Fatal("session with a foreign certificate worked")
		}
	}
}

func TestPairTrustModes(t *testing.T) {
	for _, tc := range []struct {
		mode TrustMode
		want error
	}{
		{TrustDeny, lockdown.ErrUserDeniedPairing},
		{TrustLocked, lockdown.ErrPasswordProtected},
		{TrustNever, lockdown.ErrPairingDialogResponsePending},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			_, devs, path := startUsbmuxd(t, 1)
			d := devs[0]
			d.SetTrust(tc.mode)
			m := newMux(t, path)
			// The lookup and the exchange up to the dialog have the generous test bound (key
			// generation under -race on a loaded machine takes seconds); only the wait on the
			// dialog is cut short, a few retries after it showed.
			ctx, giveUp := context.WithCancel(testCtx(t))
			defer giveUp()
			dev, err := m.FindDevice(ctx, d.UDID)
			if err != nil {
				t.Fatal(err)
			}
			const every = 20 * time.Millisecond
			var prompts atomic.Int32
			_, err = m.Pair(ctx, dev, lockdown.PairOptions{RetryInterval: every, OnPrompt: func() {
				prompts.Add(1)
				time.AfterFunc(10*every, giveUp)
			}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Pair: %v, want %v", err, tc.want)
			}
			if tc.mode == TrustNever && (!errors.Is(err, context.Canceled) || prompts.Load() != 1) {
				t.Fatalf("pending forever: %v, %d prompts (want the context's error and one prompt)", err, prompts.Load())
			}
			if len(d.PairedHostIDs()) != 0 {
				t.Fatal("device trusts a host after a failed Pair")
			}
			if _, err := m.ReadPairRecord(testCtx(t), d.UDID); !errors.Is(err, pairrecord.ErrNotFound) {
				t.Fatalf("usbmuxd has a record after a failed Pair: %v", err)
			}
		})
	}
}

// TestPairAfterPrompt: the first Pair shows the dialog; the client's retry succeeds.
func TestPairAfterPrompt(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 1)
	d := devs[0]
	d.SetTrust(TrustAfterPrompt)
	m := newMux(t, path)
	ctx := testCtx(t)
	dev, _ := m.FindDevice(ctx, d.UDID)
	prompts := 0
	rec, err := m.Pair(ctx, dev, lockdown.PairOptions{RetryInterval: 10 * time.Millisecond, OnPrompt: func() { prompts++ }})
	if err != nil {
		t.Fatal(err)
	}
	if prompts != 1 || len(d.PairedHostIDs()) != 1 || d.PairedHostIDs()[0] != rec.HostID {
		t.Fatalf("%d prompts, paired %v", prompts, d.PairedHostIDs())
	}
}

// TestPairRejectsWrongDeviceCertificate: a record made for another device's key is refused.
func TestPairRejectsWrongDeviceCertificate(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 2)
	m := newMux(t, path)
	ctx := testCtx(t)
	dev, _ := m.FindDevice(ctx, devs[0].UDID)
	wrong, err := pairrecord.New(devs[1].DevicePublicKeyPEM(), pairrecord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendPair(ctx, wrong, lockdown.PairOptions{}); !errors.Is(err, lockdown.ErrInvalidPairRecord) {
		t.Fatalf("Pair with another device's certificate: %v", err)
	}
}

func TestStartServiceTLS(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 2)
	m := newMux(t, path)
	rec, dev := pairDevice(t, m, devs[1])
	ctx := testCtx(t)
	for _, name := range []string{testEchoTLS, testEchoClear, testHSOnly} {
		t.Run(name, func(t *testing.T) {
			nc, svc, err := m.StartService(ctx, dev.ID, rec, name)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if want := lockdownServices[name].SSL; svc.SSL != want {
				t.Fatalf("EnableServiceSSL %v, want %v", svc.SSL, want)
			}
			_, isTLS := nc.(*tls.Conn)
			if isTLS != (svc.SSL && !lockdown.HandshakeOnly(name)) {
				t.Fatalf("connection type %T for %+v", nc, svc)
			}
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(nc, "hello\n")
			line, err := bufio.NewReader(nc).ReadString('\n')
			if err != nil || line != devs[1].UDID+" hello\n" {
				t.Fatalf("echo %q %v", line, err)
			}
			// The port was for one connection only.
			if _, err := m.Connect(ctx, dev.ID, svc.Port); !errors.Is(err, lockdown.ErrConnRefused) {
				t.Fatalf("second Connect to a used service port: %v", err)
			}
		})
	}
}

func TestStartServiceErrors(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 1)
	m := newMux(t, path)
	rec, dev := pairDevice(t, m, devs[0])
	ctx := testCtx(t)
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.StartService(ctx, testEchoTLS, nil); !errors.Is(err, lockdown.ErrSessionInactive) {
		t.Fatalf("StartService without session: %v", err)
	}
	if err := c.StartSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartService(ctx, "com.example.nope", nil); !errors.Is(err, lockdown.ErrInvalidService) {
		t.Fatalf("StartService unknown: %v", err)
	}
	if _, err := m.Connect(ctx, dev.ID, 1234); !errors.Is(err, lockdown.ErrConnRefused) {
		t.Fatalf("Connect to a closed port: %v", err)
	}
	if _, err := m.Connect(ctx, 999, lockdown.LockdownPort); !errors.Is(err, lockdown.ErrBadDevice) {
		t.Fatalf("Connect to an unknown device: %v", err)
	}
	// A service started by a host must refuse a TLS client that is not paired.
	svc, err := c.StartService(ctx, testEchoTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pairrecord.New(devs[0].DevicePublicKeyPEM(), pairrecord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := m.ConnectService(ctx, dev.ID, svc, stranger); err == nil {
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(nc, "hello\n")
		if _, err := bufio.NewReader(nc).ReadString('\n'); err == nil {
			t.Fatal("unpaired host used a TLS service")
		}
		nc.Close()
	}
}

func TestUsbmuxdPairRecords(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	m := newMux(t, path)
	ctx := testCtx(t)
	udid := devs[0].UDID
	buid, err := m.ReadBUID(ctx)
	if err != nil || buid != u.BUID() {
		t.Fatalf("ReadBUID %q %v", buid, err)
	}
	rec := &pairrecord.Record{HostID: "H", SystemBUID: buid, Extra: map[string]any{"Custom": "kept"}}
	if err := m.SavePairRecord(ctx, udid, 0, rec); err != nil {
		t.Fatal(err)
	}
	raw, ok := u.PairRecord(udid)
	if !ok || !strings.HasPrefix(string(raw), "<?xml") {
		t.Fatalf("stored record is not XML: %q", raw)
	}
	got, err := m.ReadPairRecord(ctx, udid)
	if err != nil || got.HostID != "H" || got.Extra["Custom"] != "kept" {
		t.Fatalf("ReadPairRecord %v %v", got, err)
	}
	if err := m.DeletePairRecord(ctx, udid); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadPairRecord(ctx, udid); !errors.Is(err, pairrecord.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := m.DeletePairRecord(ctx, udid); !errors.Is(err, pairrecord.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The usbmuxd answers as a pairrecord.Source.
	if _, src, err := pairrecord.Find(ctx, udid, pairrecord.Usbmuxd(m, "")); !errors.Is(err, pairrecord.ErrNotFound) || src != nil {
		t.Fatalf("Find on empty usbmuxd: %v", err)
	}
	u.SetPairRecord(udid, mustMarshal(t, rec))
	if r, src, err := pairrecord.Find(ctx, udid, pairrecord.Usbmuxd(m, "")); err != nil || r.HostID != "H" || src.String() != "usbmuxd" {
		t.Fatalf("Find: %v %v %v", r, src, err)
	}
}

func mustMarshal(t *testing.T, r *pairrecord.Record) []byte {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestUsbmuxdBinaryProtocol drives Listen and Connect with version-0 messages.
func TestUsbmuxdBinaryProtocol(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 1)
	dial := func() net.Conn {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	send := func(nc net.Conn, typ lockdown.MessageType, tag uint32, payload []byte) {
		if err := lockdown.WriteMessage(nc, &lockdown.Message{Header: lockdown.Header{Version: lockdown.VersionBinary, Type: typ, Tag: tag}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	result := func(nc net.Conn, tag uint32) lockdown.ResultCode {
		m, err := lockdown.ReadMessage(nc, 0)
		if err != nil || m.Type != lockdown.TypeResult || m.Tag != tag {
			t.Fatalf("result: %+v %v", m, err)
		}
		code, err := lockdown.DecodeResult(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	ln := dial()
	send(ln, lockdown.TypeListen, 7, nil)
	if code := result(ln, 7); code != lockdown.ResultOK {
		t.Fatalf("Listen result %d", code)
	}
	m, err := lockdown.ReadMessage(ln, 0)
	if err != nil || m.Type != lockdown.TypeDeviceAdd {
		t.Fatalf("device add: %+v %v", m, err)
	}
	rec, err := lockdown.DecodeDeviceRecord(m.Payload)
	if err != nil || rec.SerialNumber != devs[0].UDID {
		t.Fatalf("device record %+v %v", rec, err)
	}
	for _, tc := range []struct {
		port uint16
		want lockdown.ResultCode
	}{{lockdown.LockdownPort, lockdown.ResultOK}, {1, lockdown.ResultConnRefused}} {
		nc := dial()
		p, _ := lockdown.ConnectRequest{DeviceID: rec.DeviceID, Port: tc.port}.MarshalBinary()
		send(nc, lockdown.TypeConnect, 3, p)
		if code := result(nc, 3); code != tc.want {
			t.Fatalf("Connect %d: result %d, want %d", tc.port, code, tc.want)
		}
		if tc.want == lockdown.ResultOK {
			c := lockdown.NewClient(nc)
			if typ, err := c.QueryType(testCtx(t)); err != nil || typ != lockdown.QueryTypeNormal {
				t.Fatalf("QueryType over binary Connect: %q %v", typ, err)
			}
		}
	}
	nc := dial()
	send(nc, lockdown.TypeDeviceAdd, 4, nil)
	if code := result(nc, 4); code != lockdown.ResultBadCommand {
		t.Fatalf("bad binary command: %d", code)
	}
}

func TestUsbmuxdFaults(t *testing.T) {
	u, _, path := startUsbmuxd(t, 1)
	m := newMux(t, path)
	m.Timeout = 2 * time.Second

	u.FailNext(FaultGarbage)
	if _, err := m.ListDevices(testCtx(t)); !errors.Is(err, lockdown.ErrShortMessage) {
		t.Fatalf("garbage: %v", err)
	}
	u.FailNext(FaultClose)
	if _, err := m.ListDevices(testCtx(t)); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("close: %v", err)
	}
	u.FailNext(FaultStall)
	ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	if _, err := m.ListDevices(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stall: %v", err)
	}
	// Faults are one-shot: the next call works.
	if devs, err := m.ListDevices(testCtx(t)); err != nil || len(devs) != 1 {
		t.Fatalf("after faults: %v %v", devs, err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestUsbmuxdTCP serves on TCP and reaches it through USBMUXD_SOCKET_ADDRESS's HOST:PORT form.
func TestUsbmuxdTCP(t *testing.T) {
	u := NewUsbmuxd(context.Background(), UsbmuxdOptions{DashlessSerial: true})
	defer u.Close()
	addr, err := u.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := NewDevice(profile.Default(), "tcp", nil)
	u.Plug(d)
	t.Setenv(lockdown.EnvSocketAddress, addr.String())
	m, err := lockdown.NewMux("")
	if err != nil || m.Network != "tcp" {
		t.Fatalf("NewMux from env: %+v %v", m, err)
	}
	dev, err := m.FindDevice(testCtx(t), d.UDID)
	if err != nil || strings.Contains(dev.UDID, "-") {
		t.Fatalf("FindDevice with a dash-less serial: %+v %v", dev, err)
	}
	if u.SocketAddress() != addr.String() {
		t.Fatalf("SocketAddress %q", u.SocketAddress())
	}
}

// TestCloseWithClients: Close returns with Listen, lockdown and stalled clients connected.
func TestUsbmuxdCloseWithClients(t *testing.T) {
	u := NewUsbmuxd(context.Background(), UsbmuxdOptions{})
	path := filepath.Join(socketDir(t), "usbmuxd")
	if _, err := u.ListenUnix(path); err != nil {
		t.Fatal(err)
	}
	d := NewDevice(profile.Default(), "", nil)
	id := u.Plug(d)
	m := newMux(t, path)
	ctx := testCtx(t)
	l, err := m.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Lockdown(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u.FailNext(FaultStall)
	stalled, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	u.Close()
	for range l.Events() {
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

// TestCoreDeviceProxyOverUsbmuxd walks the iOS 17.4+ bootstrap (lockdown.md §6) through the
// simulated usbmuxd: pair, session, StartService CoreDeviceProxy, TLS, CDTunnel handshake, an
// RSD handshake through the userspace tunnel; then unplugging the device ends the tunnel with
// an error that says the transport went away. In between, 4 MiB each way at once arrive intact,
// with the batches of both sides held into one socket write (lockdown.ConnectService and the
// simulator's lockdownd put their TLS on a cork.Conn).
func TestCoreDeviceProxyOverUsbmuxd(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	sessions := make(chan *TunnelSession, 1)
	devs[0].SetTunnelOptions(TunnelOptions{OnStart: func(s *TunnelSession) { sessions <- s }})
	m := newMux(t, path)
	rec, dev := pairDevice(t, m, devs[0])
	ctx := testCtx(t)
	nc, svc, err := m.StartService(ctx, dev.ID, rec, CoreDeviceProxyService)
	if err != nil {
		t.Fatal(err)
	}
	if !svc.SSL {
		nc.Close()
		t.Fatal("CoreDeviceProxy without EnableServiceSSL")
	}
	tun, err := tunnel.Start(ctx, nc, tunnel.Options{RequestMTU: 16000})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	if p := tun.Params(); p.Validate() != nil || p.MTU != 16000 {
		t.Fatalf("tunnel parameters %+v", p)
	}
	rc, err := tun.DialContext(ctx, "tcp", tun.Params().RSDAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := rsd.Client(ctx, rc, rsd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rsd.ReadHandshake(ctx, c, nil)
	c.Close()
	if err != nil || h.UDID() != devs[0].UDID {
		t.Fatalf("RSD through the tunnel: %v", err)
	}
	if cork.Of(nc) == nil {
		t.Fatal("the CoreDeviceProxy connection's records cannot be held: no cork.Conn under its TLS")
	}
	if err := bulkBothWays(tun.DialContext, <-sessions); err != nil {
		t.Fatal(err)
	}
	u.Unplug(devs[0])
	select {
	case <-tun.Done():
		if err := tun.Err(); err == nil || !strings.Contains(err.Error(), "transport") {
			t.Fatalf("tunnel ended with %v, want a transport error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tunnel still up 30 s after the device was unplugged")
	}
}
