package tunnel

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// test-vectors.md §9.3.
const (
	vectorRequest = `434454756e6e656c002d7b2274797065223a22636c69656e7448616e64736861
6b6552657175657374222c226d7475223a31363030307d`
	vectorResponseHeader = "434454756e6e656c00bc"
	vectorResponseBody   = `{"clientParameters":{"address":"fd58:8c92:8961::2","mtu":1280,"netmask":"ffff:ffff:ffff:ffff::"},"serverAddress":"fd58:8c92:8961::1","serverRSDPort":56307,"type":"serverHandshakeResponse"}`
)

var vectorParams = &Params{
	ClientAddress: netip.MustParseAddr("fd58:8c92:8961::2"),
	Netmask:       Netmask64,
	MTU:           1280,
	ServerAddress: netip.MustParseAddr("fd58:8c92:8961::1"),
	ServerRSDPort: 56307,
}

func TestRequestVector(t *testing.T) {
	want := unhex(t, vectorRequest)
	if got := AppendRequest(nil, 16000); !bytes.Equal(got, want) {
		t.Fatalf("request\n got %x\nwant %x", got, want)
	}
	mtu, err := ParseRequest(want[HandshakeHeaderLen:])
	if err != nil || mtu != 16000 {
		t.Fatalf("ParseRequest: %d, %v", mtu, err)
	}
}

func TestResponseVector(t *testing.T) {
	want := append(unhex(t, vectorResponseHeader), vectorResponseBody...)
	if len(vectorResponseBody) != 188 {
		t.Fatalf("vector body is %d bytes", len(vectorResponseBody))
	}
	got, err := AppendResponse(nil, vectorParams)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("response\n got %q\nwant %q", got, want)
	}
	p, err := ParseResponse([]byte(vectorResponseBody))
	if err != nil {
		t.Fatal(err)
	}
	if *p != *vectorParams {
		t.Fatalf("parsed %+v, want %+v", p, vectorParams)
	}
	if p.PrefixLen() != 64 || p.Prefix().String() != "fd58:8c92:8961::2/64" || p.RSDAddr().String() != "[fd58:8c92:8961::1]:56307" {
		t.Fatalf("prefix %v rsd %v", p.Prefix(), p.RSDAddr())
	}
}

// TestResponseFitsStrictPeers pins what appium-ios-tuntap's substring parser and go-ios's
// one-length-byte reader need, for the longest possible values.
func TestResponseFitsStrictPeers(t *testing.T) {
	p := &Params{
		ClientAddress: netip.MustParseAddr("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fff2"),
		Netmask:       Netmask64,
		MTU:           65535,
		ServerAddress: netip.MustParseAddr("fdff:ffff:ffff:ffff:ffff:ffff:ffff:fff1"),
		ServerRSDPort: 65535,
	}
	f, err := AppendResponse(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	body := f[HandshakeHeaderLen:]
	if len(body) >= 256 || f[HandshakeHeaderLen-2] != 0 {
		t.Fatalf("body is %d bytes; go-ios reads only the low length byte", len(body))
	}
	if bytes.ContainsAny(body, " \t\r\n") {
		t.Fatalf("body is not compact: %s", body)
	}
	cp := body[bytes.Index(body, []byte(`"clientParameters"`)):]
	flat := cp[bytes.IndexByte(cp, '{'):]
	flat = flat[:bytes.IndexByte(flat, '}')+1]
	for _, s := range []string{`"address":"`, `"mtu":`} {
		if !bytes.Contains(flat, []byte(s)) {
			t.Fatalf("clientParameters %s lacks %s", flat, s)
		}
	}
	for _, s := range []string{`"serverAddress":"`, `"serverRSDPort":65535`} {
		if !bytes.Contains(body, []byte(s)) {
			t.Fatalf("body %s lacks %s", body, s)
		}
	}
	if q, err := ParseResponse(body); err != nil || *q != *p {
		t.Fatalf("round trip %+v %v", q, err)
	}
}

func TestParseRequestForms(t *testing.T) {
	for body, want := range map[string]int{
		`{"type":"clientHandshakeRequest","mtu":1280}`:     1280,
		`{"type": "clientHandshakeRequest", "mtu": 16000}`: 16000, // pymobiledevice3's separators
		`{"mtu":1420,"type":"clientHandshakeRequest"}`:     1420,
	} {
		if got, err := ParseRequest([]byte(body)); err != nil || got != want {
			t.Errorf("%s: %d, %v", body, got, err)
		}
	}
	for _, body := range []string{
		``, `{`, `[]`, `{"mtu":1280}`, `{"type":"serverHandshakeResponse","mtu":1280}`,
		`{"type":"clientHandshakeRequest"}`, `{"type":"clientHandshakeRequest","mtu":-1}`,
		`{"type":"clientHandshakeRequest","mtu":1.5}`, `{"type":"clientHandshakeRequest","mtu":1280}x`,
		`{"type":"clientHandshakeRequest","mtu":99999999999}`,
	} {
		if _, err := ParseRequest([]byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
}

func TestParseResponseRejects(t *testing.T) {
	good := vectorResponseBody
	for name, body := range map[string]string{
		"not json":         `{"clientParameters":`,
		"wrong type":       strings.Replace(good, "serverHandshakeResponse", "clientHandshakeRequest", 1),
		"no client params": `{"serverAddress":"fd58:8c92:8961::1","serverRSDPort":56307}`,
		"ipv4 client":      strings.Replace(good, "fd58:8c92:8961::2", "10.0.0.2", 1),
		"bad address":      strings.Replace(good, "fd58:8c92:8961::2", "fd58::zz", 1),
		"same addresses":   strings.Replace(good, "fd58:8c92:8961::1", "fd58:8c92:8961::2", 1),
		"small mtu":        strings.Replace(good, `"mtu":1280`, `"mtu":1279`, 1),
		"quoted mtu":       strings.Replace(good, `"mtu":1280`, `"mtu":"x"`, 1),
		"port 0":           strings.Replace(good, `56307`, `0`, 1),
		"port too big":     strings.Replace(good, `56307`, `65536`, 1),
		"hole in netmask":  strings.Replace(good, "ffff:ffff:ffff:ffff::", "ffff:0:ffff::", 1),
		"trailing data":    good + "{}",
	} {
		if _, err := ParseResponse([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Missing netmask and type are tolerated (peers do not read them).
	lenient := `{"clientParameters":{"address":"fd58:8c92:8961::2","mtu":1280},"serverAddress":"fd58:8c92:8961::1","serverRSDPort":56307}`
	if p, err := ParseResponse([]byte(lenient)); err != nil || *p != *vectorParams {
		t.Fatalf("lenient: %+v %v", p, err)
	}
}

func TestReadFrameBounds(t *testing.T) {
	for name, in := range map[string][]byte{
		"bad magic":    append([]byte("CDTunneX\x00\x02"), "{}"...),
		"zero length":  []byte("CDTunnel\x00\x00"),
		"too long":     append([]byte("CDTunnel\x10\x01"), make([]byte, 4097)...),
		"short header": []byte("CDTun"),
		"short body":   append([]byte("CDTunnel\x00\x10"), "{}"...),
	} {
		if _, err := ReadFrame(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err := ReadFrame(bytes.NewReader([]byte("HTTP/1.1 200 OK\r\n")))
	if !errors.Is(err, ErrBadMagic) {
		t.Fatalf("bad magic: %v", err)
	}
}

// TestHandshakeRoundTrip runs both roles over a pipe and checks that the packet stream that
// follows the response in the same write is not swallowed by the handshake reader.
func TestHandshakeRoundTrip(t *testing.T) {
	hc, dc := net.Pipe()
	defer hc.Close()
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pkt := echoRequest(vectorParams.ClientAddress, vectorParams.ServerAddress, 1, 8)
	errc := make(chan error, 1)
	go func() {
		mtu, err := ReadRequest(ctx, dc)
		if err != nil {
			errc <- err
			return
		}
		p := *vectorParams
		p.MTU = min(mtu, 1500)
		f, err := AppendResponse(nil, &p)
		if err == nil {
			_, err = dc.Write(append(f, pkt...))
		}
		errc <- err
	}()
	p, err := ClientHandshake(ctx, hc, 16000)
	if err != nil {
		t.Fatal(err)
	}
	want := *vectorParams
	want.MTU = 1500
	if *p != want {
		t.Fatalf("client got %+v, want %+v", p, want)
	}
	buf := make([]byte, 2000)
	n, err := NewPacketReader(hc, 0).ReadPacket(buf)
	if err != nil || !bytes.Equal(buf[:n], pkt) {
		t.Fatalf("packet after the handshake: %x, %v", buf[:n], err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestServerHandshake(t *testing.T) {
	hc, dc := net.Pipe()
	defer hc.Close()
	defer dc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go ClientHandshake(ctx, hc, 1280)
	p, err := ServerHandshake(ctx, dc, func(mtu int) (*Params, error) { return RandomParams(mtu, 1234), nil })
	if err != nil {
		t.Fatal(err)
	}
	if p.MTU != 1280 || p.ClientAddress.As16()[0] != 0xfd || p.ClientAddress.Next() != p.ServerAddress.Next().Next() {
		t.Fatalf("granted %+v", p)
	}
	// A refused grant is an error naming the stage.
	go ClientHandshake(ctx, hc, 1280)
	_, err = ServerHandshake(ctx, dc, func(int) (*Params, error) { return nil, errors.New("no") })
	if err == nil || !strings.Contains(err.Error(), "granting mtu 1280") {
		t.Fatalf("refused grant: %v", err)
	}
}

// TestHandshakeHonoursContext: a device that never answers fails the handshake when ctx ends.
func TestHandshakeHonoursContext(t *testing.T) {
	hc, dc := net.Pipe()
	defer hc.Close()
	defer dc.Close()
	go io.Copy(io.Discard, dc)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := ClientHandshake(ctx, hc, 16000)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "tunnel: CDTunnel handshake (client): reading response") {
		t.Fatalf("err %v", err)
	}
	// The deadline is lifted afterwards: the conn is still usable.
	go dc.Write([]byte("x"))
	hc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := hc.Read(make([]byte, 1)); err != nil {
		t.Fatalf("conn unusable after the handshake: %v", err)
	}
}

func TestRandomParams(t *testing.T) {
	a, b := RandomParams(1280, 1), RandomParams(1280, 1)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.Prefix().Masked() == b.Prefix().Masked() {
		t.Fatalf("two tunnels share prefix %v", a.Prefix())
	}
	if !a.Prefix().Contains(a.ServerAddress) || a.ServerAddress.As16()[15] != 1 || a.ClientAddress.As16()[15] != 2 {
		t.Fatalf("params %+v", a)
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(vectorResponseBody))
	f.Add([]byte(`{"type":"clientHandshakeRequest","mtu":16000}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		peertest.BoundAllocs(t, len(body), 256, func() {
			p, err := ParseResponse(body)
			if err != nil {
				return
			}
			f, err := AppendResponse(nil, p)
			if err != nil {
				t.Fatalf("accepted %+v but cannot encode it: %v", p, err)
			}
			q, err := ParseResponse(f[HandshakeHeaderLen:])
			if err != nil || *q != *p {
				t.Fatalf("re-encoding changed %+v to %+v (%v)", p, q, err)
			}
			ParseRequest(body)
			ReadFrame(bytes.NewReader(body))
		})
	})
}

// FuzzReadRequest is the device side reading a host's CDTunnel request from arbitrary bytes.
func FuzzReadRequest(f *testing.F) {
	f.Add(AppendRequest(nil, 16000))
	f.Add([]byte("CDTunnel\x00\xff{}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		peertest.BoundAllocs(t, len(in), 64, func() {
			mtu, err := ReadRequest(context.Background(), bytes.NewReader(in))
			if err == nil && mtu <= 0 {
				t.Fatalf("accepted MTU %d", mtu)
			}
		})
	})
}
