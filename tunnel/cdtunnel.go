package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// CDTunnel handshake constants (tunnel.md §5, §12).
const (
	// Magic opens every CDTunnel handshake frame, followed by BE16(len(json)) and the JSON.
	Magic = "CDTunnel"
	// HandshakeHeaderLen is len(Magic) plus the 2-byte length.
	HandshakeHeaderLen = len(Magic) + 2
	// MaxHandshakeBody bounds the JSON body a reader accepts. Real bodies are ~45 bytes
	// (request) and ~190 bytes (response); go-ios even reads only the low length byte.
	MaxHandshakeBody = 4096
	// DefaultRequestMTU is what pymobiledevice3 and idevice request on TCP and CoreDeviceProxy.
	DefaultRequestMTU = 16000
	// MinMTU is IPv6's minimum link MTU (RFC 8200); a tunnel below it cannot carry IPv6.
	MinMTU = 1280
	// DefaultHandshakeTimeout bounds a handshake on a conn with deadlines when ctx has none.
	DefaultHandshakeTimeout = 15 * time.Second

	requestType  = "clientHandshakeRequest"
	responseType = "serverHandshakeResponse"
)

// Netmask64 is the netmask the device sends: ffff:ffff:ffff:ffff:: (a /64).
var Netmask64 = netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

// ErrBadMagic means a handshake frame did not start with "CDTunnel".
var ErrBadMagic = errors.New("frame does not start with \"CDTunnel\"")

// Params is what the device's serverHandshakeResponse grants.
type Params struct {
	// ClientAddress is the host's address inside the tunnel (the device sends fdxx:…::2).
	ClientAddress netip.Addr
	// Netmask is the client address's netmask (ffff:ffff:ffff:ffff:: = /64).
	Netmask netip.Addr
	// MTU is the MTU granted, at most the one requested.
	MTU int
	// ServerAddress is the device's address inside the tunnel (fdxx:…::1).
	ServerAddress netip.Addr
	// ServerRSDPort is the trusted RSD port on ServerAddress (tunnel.md §9).
	ServerRSDPort uint16
}

// PrefixLen is the netmask's length in bits, or -1 when it is not a contiguous IPv6 mask.
func (p *Params) PrefixLen() int {
	if !p.Netmask.Is6() || p.Netmask.Is4In6() {
		return -1
	}
	b := p.Netmask.As16()
	n := 0
	for i, x := range b {
		if x == 0xff {
			n += 8
			continue
		}
		ones := 0
		for x&0x80 != 0 {
			ones++
			x <<= 1
		}
		if x != 0 {
			return -1
		}
		n += ones
		for _, rest := range b[i+1:] {
			if rest != 0 {
				return -1
			}
		}
		break
	}
	return n
}

// Prefix is the client address with the netmask's length (fdxx:…::2/64).
func (p *Params) Prefix() netip.Prefix { return netip.PrefixFrom(p.ClientAddress, p.PrefixLen()) }

// RSDAddr is the device's trusted RSD endpoint inside the tunnel.
func (p *Params) RSDAddr() netip.AddrPort {
	return netip.AddrPortFrom(p.ServerAddress, p.ServerRSDPort)
}

// Validate checks what the host needs: two distinct IPv6 unicast addresses, a contiguous
// netmask, an MTU that can carry IPv6 and a non-zero RSD port.
func (p *Params) Validate() error {
	for _, a := range []struct {
		name string
		addr netip.Addr
	}{{"client address", p.ClientAddress}, {"server address", p.ServerAddress}} {
		if !a.addr.Is6() || a.addr.Is4In6() || a.addr.Zone() != "" || a.addr.IsUnspecified() || a.addr.IsMulticast() {
			return fmt.Errorf("%s %v is not an IPv6 unicast address", a.name, a.addr)
		}
	}
	if p.ClientAddress == p.ServerAddress {
		return fmt.Errorf("client and server address are both %v", p.ClientAddress)
	}
	if p.PrefixLen() < 0 {
		return fmt.Errorf("netmask %v is not a contiguous IPv6 mask", p.Netmask)
	}
	if p.MTU < MinMTU || p.MTU > 0xffff {
		return fmt.Errorf("mtu %d outside [%d, 65535]", p.MTU, MinMTU)
	}
	if p.ServerRSDPort == 0 {
		return errors.New("serverRSDPort is 0")
	}
	return nil
}

// appendHeader appends the magic and a BE16 length.
func appendHeader(b []byte, n int) []byte {
	b = append(b, Magic...)
	return binary.BigEndian.AppendUint16(b, uint16(n))
}

// AppendRequest appends a complete request frame, JSON exactly as appium-ios-tuntap and the
// vector of test-vectors.md §9.3: {"type":"clientHandshakeRequest","mtu":N}.
func AppendRequest(b []byte, mtu int) []byte {
	body := strconv.AppendInt([]byte(`{"type":"`+requestType+`","mtu":`), int64(mtu), 10)
	body = append(body, '}')
	return append(appendHeader(b, len(body)), body...)
}

// AppendResponse appends a complete response frame: compact JSON, a flat clientParameters and
// the key order of the device's sample (tunnel.md §5), which appium-ios-tuntap's substring
// parser and go-ios's one-length-byte reader both need.
func AppendResponse(b []byte, p *Params) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return b, fmt.Errorf("tunnel: CDTunnel response: %w", err)
	}
	body := make([]byte, 0, 256)
	body = append(body, `{"clientParameters":{"address":"`...)
	body = p.ClientAddress.AppendTo(body)
	body = append(body, `","mtu":`...)
	body = strconv.AppendInt(body, int64(p.MTU), 10)
	body = append(body, `,"netmask":"`...)
	body = p.Netmask.AppendTo(body)
	body = append(body, `"},"serverAddress":"`...)
	body = p.ServerAddress.AppendTo(body)
	body = append(body, `","serverRSDPort":`...)
	body = strconv.AppendUint(body, uint64(p.ServerRSDPort), 10)
	body = append(body, `,"type":"`+responseType+`"}`...)
	return append(appendHeader(b, len(body)), body...), nil
}

// ParseRequest decodes a request body; any key order and whitespace is accepted, as on the
// device (pymobiledevice3 sends Python's default separators).
func ParseRequest(body []byte) (mtu int, err error) {
	var req struct {
		Type *string     `json:"type"`
		MTU  json.Number `json:"mtu"`
	}
	if err := strictUnmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("request JSON: %w", err)
	}
	if req.Type == nil || *req.Type != requestType {
		return 0, fmt.Errorf("request type %s, want %q", quoteOrMissing(req.Type), requestType)
	}
	if req.MTU == "" {
		return 0, errors.New("request has no mtu")
	}
	n, err := strconv.ParseUint(string(req.MTU), 10, 31)
	if err != nil {
		return 0, fmt.Errorf("request mtu %s is not a non-negative integer", req.MTU)
	}
	return int(n), nil
}

// ParseResponse decodes and validates a response body. A missing netmask is taken as /64 and
// a missing type is tolerated (appium-ios-tuntap reads neither); a wrong type is an error.
func ParseResponse(body []byte) (*Params, error) {
	var resp struct {
		Type             *string `json:"type"`
		ClientParameters *struct {
			Address string      `json:"address"`
			MTU     json.Number `json:"mtu"`
			Netmask string      `json:"netmask"`
		} `json:"clientParameters"`
		ServerAddress string      `json:"serverAddress"`
		ServerRSDPort json.Number `json:"serverRSDPort"`
	}
	if err := strictUnmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("response JSON: %w", err)
	}
	if resp.Type != nil && *resp.Type != responseType {
		return nil, fmt.Errorf("response type %q, want %q", *resp.Type, responseType)
	}
	cp := resp.ClientParameters
	if cp == nil {
		return nil, errors.New("response has no clientParameters")
	}
	p := &Params{Netmask: Netmask64}
	var err error
	if p.ClientAddress, err = netip.ParseAddr(cp.Address); err != nil {
		return nil, fmt.Errorf("clientParameters.address: %w", err)
	}
	if cp.Netmask != "" {
		if p.Netmask, err = netip.ParseAddr(cp.Netmask); err != nil {
			return nil, fmt.Errorf("clientParameters.netmask: %w", err)
		}
	}
	mtu, err := strconv.ParseUint(string(cp.MTU), 10, 31)
	if err != nil {
		return nil, fmt.Errorf("clientParameters.mtu %q is not a non-negative integer", cp.MTU)
	}
	p.MTU = int(mtu)
	if p.ServerAddress, err = netip.ParseAddr(resp.ServerAddress); err != nil {
		return nil, fmt.Errorf("serverAddress: %w", err)
	}
	port, err := strconv.ParseUint(string(resp.ServerRSDPort), 10, 16)
	if err != nil {
		return nil, fmt.Errorf("serverRSDPort %q is not a port", resp.ServerRSDPort)
	}
	p.ServerRSDPort = uint16(port)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func quoteOrMissing(s *string) string {
	if s == nil {
		return "missing"
	}
	return strconv.Quote(*s)
}

// strictUnmarshal decodes exactly one JSON object with numbers kept as json.Number.
func strictUnmarshal(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// ReadFrame reads one handshake frame and returns its JSON body. It reads exactly the frame's
// bytes, so the packet stream that follows stays intact.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [HandshakeHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if string(hdr[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("header % x: %w", hdr[:len(Magic)], ErrBadMagic)
	}
	n := int(binary.BigEndian.Uint16(hdr[len(Magic):]))
	if n == 0 || n > MaxHandshakeBody {
		return nil, fmt.Errorf("body length %d outside [1, %d]", n, MaxHandshakeBody)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("body (%d bytes): %w", n, err)
	}
	return body, nil
}

// deadliner is the part of net.Conn the handshake uses to honour ctx.
type deadliner interface{ SetDeadline(time.Time) error }

// bindContext makes ctx (or DefaultHandshakeTimeout when ctx has no deadline) interrupt I/O on
// rw when rw has deadlines; the returned func undoes it.
func bindContext(ctx context.Context, rw any) (release func()) {
	d, ok := rw.(deadliner)
	if !ok {
		return func() {}
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultHandshakeTimeout)
	}
	d.SetDeadline(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		d.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
		}
		d.SetDeadline(time.Time{})
	}
}

// handshakeErr names the stage and prefers ctx's error over the deadline it caused.
func handshakeErr(ctx context.Context, role, stage string, err error) error {
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
		cerr = context.DeadlineExceeded // the conn's deadline fired before ctx's timer
	}
	if cerr != nil {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	return fmt.Errorf("tunnel: CDTunnel handshake (%s): %s: %w", role, stage, err)
}

// ClientHandshake sends a request for mtu on rw and returns the device's parameters. When rw is
// a net.Conn, ctx (or DefaultHandshakeTimeout) bounds the exchange.
func ClientHandshake(ctx context.Context, rw io.ReadWriter, mtu int) (*Params, error) {
	defer bindContext(ctx, rw)()
	if _, err := rw.Write(AppendRequest(nil, mtu)); err != nil {
		return nil, handshakeErr(ctx, "client", "writing request", err)
	}
	body, err := ReadFrame(rw)
	if err != nil {
		return nil, handshakeErr(ctx, "client", "reading response", err)
	}
	p, err := ParseResponse(body)
	if err != nil {
		return nil, handshakeErr(ctx, "client", "response", err)
	}
	return p, nil
}

// ReadRequest reads the host's request and returns the MTU it asks for.
func ReadRequest(ctx context.Context, r io.Reader) (int, error) {
	defer bindContext(ctx, r)()
	body, err := ReadFrame(r)
	if err != nil {
		return 0, handshakeErr(ctx, "server", "reading request", err)
	}
	mtu, err := ParseRequest(body)
	if err != nil {
		return 0, handshakeErr(ctx, "server", "request", err)
	}
	return mtu, nil
}

// WriteResponse writes the device's response in one Write call.
func WriteResponse(ctx context.Context, w io.Writer, p *Params) error {
	frame, err := AppendResponse(nil, p)
	if err != nil {
		return err
	}
	defer bindContext(ctx, w)()
	if _, err := w.Write(frame); err != nil {
		return handshakeErr(ctx, "server", "writing response", err)
	}
	return nil
}

// ServerHandshake runs the device's side: it reads the request, asks grant for the parameters
// given the requested MTU, and writes the response.
func ServerHandshake(ctx context.Context, rw io.ReadWriter, grant func(requestedMTU int) (*Params, error)) (*Params, error) {
	mtu, err := ReadRequest(ctx, rw)
	if err != nil {
		return nil, err
	}
	p, err := grant(mtu)
	if err != nil {
		return nil, fmt.Errorf("tunnel: CDTunnel handshake (server): granting mtu %d: %w", mtu, err)
	}
	if err := WriteResponse(ctx, rw, p); err != nil {
		return nil, err
	}
	return p, nil
}

// RandomParams makes a device's grant as the simulator gives it (tunnel.md §5): a random ULA
// /64 (RFC 4193: fd00::/8, random 40-bit global ID and 16-bit subnet), ::1 for the device, ::2
// for the host.
func RandomParams(mtu int, rsdPort uint16) *Params {
	var b [16]byte
	rand.Read(b[1:8])
	b[0] = 0xfd
	b[15] = 2
	client := netip.AddrFrom16(b)
	b[15] = 1
	return &Params{ClientAddress: client, Netmask: Netmask64, MTU: mtu, ServerAddress: netip.AddrFrom16(b), ServerRSDPort: rsdPort}
}
