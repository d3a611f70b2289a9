package lockdown

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/pairrecord"
)

func TestParseSocketAddress(t *testing.T) {
	t.Setenv(EnvSocketAddress, "")
	for _, tc := range []struct{ in, network, addr string }{
		{"", "unix", DefaultSocketPath},
		{"UNIX:/tmp/mux", "unix", "/tmp/mux"},
		{"unix:/tmp/mux", "unix", "/tmp/mux"},
		{"unix:///tmp/mux", "unix", "/tmp/mux"},
		{"unix:rel/mux", "unix", "rel/mux"},
		{"tcp:127.0.0.1:27015", "tcp", "127.0.0.1:27015"},
		{"tcp://host.example:27015", "tcp", "host.example:27015"},
		{"127.0.0.1:27015", "tcp", "127.0.0.1:27015"},
		{"[::1]:27015", "tcp", "[::1]:27015"},
		{"/var/run/usbmuxd", "unix", "/var/run/usbmuxd"},
		{"/weird:1234", "unix", "/weird:1234"},
		{"plainname", "unix", "plainname"},
		{"./rel:mux", "unix", "./rel:mux"},
		{"localhost:27015", "tcp", "localhost:27015"},
	} {
		n, a, err := ParseSocketAddress(tc.in)
		if err != nil || n != tc.network || a != tc.addr {
			t.Errorf("ParseSocketAddress(%q) = %q %q %v, want %q %q", tc.in, n, a, err, tc.network, tc.addr)
		}
	}
	for _, bad := range []string{"unix:", "tcp:nohost", "tcp::1234", "tcp:host:0",
		"udp:127.0.0.1:27015", "udp:/tmp/mux", "udp:27015", "http://127.0.0.1:27015", "weird:thing"} {
		if _, _, err := ParseSocketAddress(bad); err == nil {
			t.Errorf("ParseSocketAddress(%q) accepted", bad)
		}
	}
	t.Setenv(EnvSocketAddress, "10.0.0.1:27015")
	if n, a, _ := ParseSocketAddress(""); n != "tcp" || a != "10.0.0.1:27015" {
		t.Errorf("from environment: %q %q", n, a)
	}
}

func TestErrorMatching(t *testing.T) {
	err := error(&Error{Request: "StartSession", Code: CodeInvalidHostID})
	if !errors.Is(err, ErrInvalidHostID) || errors.Is(err, ErrPasswordProtected) {
		t.Fatal("Is does not match on Code")
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "lockdown: StartSession: InvalidHostID") || !strings.Contains(msg, "not paired") {
		t.Fatalf("message %q", msg)
	}
	if errors.Is(ErrInvalidHostID, err) {
		t.Fatal("a sentinel must not match a specific error")
	}
	for _, tc := range []struct {
		e    *MuxError
		want error
		not  error
	}{
		{&MuxError{Request: MsgReadPairRecord, Number: 2}, pairrecord.ErrNotFound, ErrBadDevice},
		{&MuxError{Request: MsgConnect, Number: 2}, ErrBadDevice, pairrecord.ErrNotFound},
		{&MuxError{Request: MsgConnect, Number: 3}, ErrConnRefused, ErrBadDevice},
		{&MuxError{Request: "X", Number: 1}, ErrBadCommand, ErrConnRefused},
	} {
		if !errors.Is(tc.e, tc.want) || errors.Is(tc.e, tc.not) {
			t.Errorf("%v: Is(%v)=%v Is(%v)=%v", tc.e, tc.want, errors.Is(tc.e, tc.want), tc.not, errors.Is(tc.e, tc.not))
		}
	}
}

// tcpPair returns both ends of a loopback TCP connection (socket buffers, unlike net.Pipe).
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	for _, c := range []net.Conn{client, server} {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		t.Cleanup(func() { c.Close() })
	}
	return client, server
}

// TestTLSRecordConnLeavesClearBytes: everything (TLS data, close_notify, clear bytes) is
// already in the socket before the client reads; the clear bytes must survive the TLS layer.
func TestTLSRecordConnLeavesClearBytes(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cRaw, sRaw := tcpPair(t)
		cert := peertest.SelfSignedCert(t)
		srv := tls.Server(sRaw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version,
			SessionTicketsDisabled: true})
		cli := tls.Client(TLSRecordConn(cRaw), &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version})
		errc := make(chan error, 1)
		go func() { errc <- srv.Handshake() }()
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		srv.Write([]byte("secret"))
		srv.CloseWrite()
		sRaw.SetWriteDeadline(time.Time{})
		sRaw.Write([]byte("CLEAR"))
		buf := make([]byte, 6)
		if _, err := io.ReadFull(cli, buf); err != nil || string(buf) != "secret" {
			t.Fatalf("TLS data %q %v", buf, err)
		}
		if n, err := cli.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("close_notify: %d %v", n, err)
		}
		clear := make([]byte, 5)
		if _, err := io.ReadFull(cRaw, clear); err != nil || string(clear) != "CLEAR" {
			t.Fatalf("%s: clear bytes after close_notify: %q %v", tls.VersionName(version), clear, err)
		}
	}
}

// fakeDevice plays lockdownd for one client: a session, then a device that does send its own
// close_notify after StopSession before answering in the clear.
func fakeDevice(t *testing.T, nc net.Conn, hostID string) error {
	var rw io.ReadWriter = nc
	var tc *tls.Conn
	for {
		var req map[string]any
		if err := ReadPlist(rw, &req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		verb, _ := req["Request"].(string)
		reply := map[string]any{"Request": verb}
		switch verb {
		case "StartSession":
			if req["HostID"] != hostID {
				reply["Error"] = CodeInvalidHostID
				break
			}
			reply["SessionID"] = "S1"
			reply["EnableSessionSSL"] = true
			if err := WritePlist(rw, reply); err != nil {
				return err
			}
			tc = tls.Server(TLSRecordConn(nc), &tls.Config{Certificates: []tls.Certificate{peertest.SelfSignedCert(t)},
				ClientAuth: tls.RequireAnyClientCert, SessionTicketsDisabled: true})
			if err := tc.Handshake(); err != nil {
				return err
			}
			rw = tc
			continue
		case "StopSession":
			if err := WritePlist(rw, reply); err != nil {
				return err
			}
			tc.CloseWrite()
			nc.SetWriteDeadline(time.Time{})
			var b [1]byte
			if _, err := tc.Read(b[:]); !errors.Is(err, io.EOF) {
				return err
			}
			rw, tc = nc, nil
			continue
		case "GetValue":
			reply["Value"] = map[bool]string{true: "in-session", false: "clear"}[tc != nil]
		case "Pair":
			reply["Result"] = "Failure"
		}
		if err := WritePlist(rw, reply); err != nil {
			return err
		}
	}
}

func testRecord(t *testing.T) *pairrecord.Record {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})
	rec, err := pairrecord.New(pub, pairrecord.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestClientSessionAgainstDeviceClosingTLS(t *testing.T) {
	cRaw, sRaw := tcpPair(t)
	rec := testRecord(t)
	errc := make(chan error, 1)
	go func() { errc <- fakeDevice(t, sRaw, rec.HostID) }()
	c := NewClient(cRaw)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	stranger := rec.Clone()
	stranger.HostID = "UNKNOWN"
	if err := c.StartSession(ctx, stranger); !errors.Is(err, ErrInvalidHostID) {
		t.Fatalf("unknown HostID: %v", err)
	}
	if err := c.StartSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetString(ctx, "", "X"); err != nil || v != "in-session" {
		t.Fatalf("in session: %q %v", v, err)
	}
	if err := c.StopSession(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetString(ctx, "", "X"); err != nil || v != "clear" {
		t.Fatalf("after StopSession: %q %v", v, err)
	}
	// Legacy Result "Failure" is an error too.
	if _, err := c.Request(ctx, map[string]any{"Request": "Pair"}); err == nil {
		t.Fatal(`Result "Failure" accepted`)
	}
	c.Close()
	if err := <-errc; err != nil {
		t.Fatalf("fake device: %v", err)
	}
}

// TestClientRequestBoundedByContext: a device that never answers does not hold the caller.
func TestClientRequestBoundedByContext(t *testing.T) {
	cRaw, _ := tcpPair(t)
	c := NewClient(cRaw)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err := c.QueryType(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "lockdown: QueryType") {
		t.Fatalf("QueryType on a silent device: %v", err)
	}
}

// TestMuxSkipsEventsAndChecksTags: a reply is matched by tag; messages with other tags
// (events) before it are skipped; a binary Result is understood.
func TestMuxSkipsEventsAndChecksTags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mux")
	if len(path) > 100 {
		t.Skip("temporary path too long for a Unix socket")
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				in, err := ReadMessage(nc, 0)
				if err != nil {
					return
				}
				mt, _ := in.PlistMessageType()
				ev, _ := NewPlistMessage(0, DeviceEvent{MessageType: MsgDetached, DeviceID: 9})
				WriteMessage(nc, ev)
				switch mt {
				case MsgReadBUID:
					r, _ := NewPlistMessage(in.Tag, BUIDReply{BUID: "B-1"})
					WriteMessage(nc, r)
				case MsgConnect:
					WriteMessage(nc, &Message{Header: Header{Version: VersionBinary, Type: TypeResult, Tag: in.Tag}, Payload: EncodeResult(ResultConnRefused)})
				}
			}()
		}
	}()
	m, err := NewMux("UNIX:" + path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if b, err := m.ReadBUID(ctx); err != nil || b != "B-1" {
		t.Fatalf("ReadBUID %q %v", b, err)
	}
	if _, err := m.Connect(ctx, 1, 1234); !errors.Is(err, ErrConnRefused) || !strings.Contains(err.Error(), "port 1234") {
		t.Fatalf("Connect: %v", err)
	}
}
