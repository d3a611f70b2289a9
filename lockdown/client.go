package lockdown

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/iosmux/iosmux/pairrecord"
)

// DefaultLabel is the Label iosmux puts in lockdown requests.
const DefaultLabel = "iosmux"

// QueryType answers (lockdown.md §4): a normal device, and one in restore mode.
const (
	QueryTypeNormal  = "com.apple.mobile.lockdown"
	QueryTypeRestore = "com.apple.mobile.restored"
)

// PairRetryInterval is how often Pair is re-sent while the Trust dialog is pending.
const PairRetryInterval = time.Second

// Client is a lockdownd client over one connection: a usbmux Connect to LockdownPort, or
// lockdown over Wi-Fi. Requests run one at a time; a Client is safe for concurrent use.
type Client struct {
	// Label is sent in every request (default DefaultLabel).
	Label string
	// Timeout bounds each request whose context has no deadline (default DefaultTimeout).
	Timeout time.Duration

	mu        sync.Mutex
	raw       net.Conn
	conn      io.ReadWriter // raw, or the session's TLS
	tls       *tls.Conn
	sessionID string
	afterStop bool // the device may still send its close_notify before the next clear reply
}

// NewClient returns a lockdown client speaking on nc; Close closes nc.
func NewClient(nc net.Conn) *Client {
	return &Client{Label: DefaultLabel, raw: nc, conn: nc}
}

// Close closes the connection.
func (c *Client) Close() error { return c.raw.Close() }

// Conn is the underlying connection.
func (c *Client) Conn() net.Conn { return c.raw }

// SessionID is the active session's ID ("" without a session).
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Request sends one lockdown request (Label is added) and returns the reply. A reply with
// Error (or the legacy Result "Failure") becomes an *Error; a reply for another verb is a
// protocol error.
func (c *Client) Request(ctx context.Context, req map[string]any) (map[string]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.request(ctx, req)
}

func (c *Client) request(ctx context.Context, in map[string]any) (map[string]any, error) {
	req := make(map[string]any, len(in)+1)
	for k, v := range in {
		req[k] = v
	}
	verb, _ := req["Request"].(string)
	if _, ok := req["Label"]; !ok {
		req["Label"] = c.Label
	}
	release := bindDeadline(ctx, c.raw, c.timeout())
	defer release()
	if err := WritePlist(c.conn, req); err != nil {
		return nil, fmt.Errorf("lockdown: %s: send: %w", verb, ctxErr(ctx, err))
	}
	reply, err := c.readReply()
	if err != nil {
		return nil, fmt.Errorf("lockdown: %s: reply: %w", verb, ctxErr(ctx, err))
	}
	if got, _ := reply["Request"].(string); got != verb {
		return nil, fmt.Errorf("lockdown: %s: %w: reply is for %q", verb, ErrProtocol, got)
	}
	if code, ok := reply["Error"].(string); ok {
		return reply, &Error{Request: verb, Code: code}
	}
	if res, _ := reply["Result"].(string); res == "Failure" {
		return reply, &Error{Request: verb, Code: "Failure"}
	}
	return reply, nil
}

// readReply reads one framed plist. Right after StopSession, TLS records in front of the clear
// reply (the device's close_notify, if it sends one: content type 0x15 in TLS 1.2, an
// encrypted 0x17 record in TLS 1.3) are skipped. No plist frame can start like a TLS record
// header (0x14–0x17, 0x03): that would announce a body of over 330 MB.
func (c *Client) readReply() (map[string]any, error) {
	var r io.Reader = c.conn
	if c.afterStop && c.tls == nil {
		c.afterStop = false
		var hdr [5]byte
		for skipped := 0; ; skipped++ {
			if _, err := io.ReadFull(c.raw, hdr[:4]); err != nil {
				return nil, err
			}
			if hdr[0] < 0x14 || hdr[0] > 0x17 || hdr[1] != 0x03 || skipped == 4 {
				r = io.MultiReader(bytesReader(hdr[:4]), c.raw)
				break
			}
			if _, err := io.ReadFull(c.raw, hdr[4:]); err != nil {
				return nil, err
			}
			n := int64(binary.BigEndian.Uint16(hdr[3:5]))
			if _, err := io.CopyN(io.Discard, c.raw, n); err != nil {
				return nil, err
			}
		}
	}
	var reply map[string]any
	if err := ReadPlist(r, &reply); err != nil {
		return nil, err
	}
	if reply == nil {
		return nil, fmt.Errorf("%w: reply is not a dictionary", ErrProtocol)
	}
	return reply, nil
}

func bytesReader(b []byte) io.Reader {
	return &sliceReader{b: append([]byte(nil), b...)}
}

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// QueryType returns the service type; a normal device answers QueryTypeNormal.
func (c *Client) QueryType(ctx context.Context) (string, error) {
	reply, err := c.Request(ctx, map[string]any{"Request": "QueryType"})
	if err != nil {
		return "", err
	}
	t, _ := reply["Type"].(string)
	if t == "" {
		return "", fmt.Errorf("lockdown: QueryType: %w: no Type", ErrProtocol)
	}
	return t, nil
}

// GetValue reads one value; domain "" is the default domain. key "" returns the whole
// domain (see GetValues). Values are plist-decoded: integers uint64, data []byte, dictionaries
// map[string]any, arrays []any.
func (c *Client) GetValue(ctx context.Context, domain, key string) (any, error) {
	req := map[string]any{"Request": "GetValue"}
	if domain != "" {
		req["Domain"] = domain
	}
	if key != "" {
		req["Key"] = key
	}
	reply, err := c.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	v, ok := reply["Value"]
	if !ok {
		return nil, fmt.Errorf("lockdown: GetValue %s: %w: no Value", key, ErrProtocol)
	}
	return v, nil
}

// GetValues reads a whole domain ("" is the default domain): the reduced set before a session,
// everything after StartSession (device-profile.md §2).
func (c *Client) GetValues(ctx context.Context, domain string) (map[string]any, error) {
	v, err := c.GetValue(ctx, domain, "")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("lockdown: GetValue: %w: Value is %T, want a dictionary", ErrProtocol, v)
	}
	return m, nil
}

// GetString reads a string value.
func (c *Client) GetString(ctx context.Context, domain, key string) (string, error) {
	v, err := c.GetValue(ctx, domain, key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("lockdown: GetValue %s: %w: Value is %T, want string", key, ErrProtocol, v)
	}
	return s, nil
}

// ClientTLSConfig is the host side of lockdown TLS (lockdown.md §4.1): the pair record's host
// certificate as client certificate, no verification of the device (no client verifies it),
// TLS 1.2 or later.
func ClientTLSConfig(rec *pairrecord.Record) (*tls.Config, error) {
	cert, err := rec.TLSCertificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // devices present certificates no host can verify
		MinVersion:         tls.VersionTLS12,
		// Full-size records from the first byte: the tunnel writes one IPv6 packet per
		// record (tunnel.md §6), which Go's slow-start record sizing would split.
		DynamicRecordSizingDisabled: true,
	}, nil
}

// StartSession starts a session with the pair record's HostID and SystemBUID and, when the
// device asks for it (EnableSessionSSL), switches the connection to TLS with the record's host
// certificate. An unknown HostID gives an error matching ErrInvalidHostID.
func (c *Client) StartSession(ctx context.Context, rec *pairrecord.Record) error {
	if err := rec.Validate(); err != nil {
		return fmt.Errorf("lockdown: StartSession: %w", err)
	}
	cfg, err := ClientTLSConfig(rec)
	if err != nil {
		return fmt.Errorf("lockdown: StartSession: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionID != "" {
		return fmt.Errorf("lockdown: StartSession: %w", ErrSessionActive)
	}
	reply, err := c.request(ctx, map[string]any{
		"Request":         "StartSession",
		"ProtocolVersion": "2",
		"HostID":          rec.HostID,
		"SystemBUID":      rec.SystemBUID,
	})
	if err != nil {
		return err
	}
	id, _ := reply["SessionID"].(string)
	if id == "" {
		return fmt.Errorf("lockdown: StartSession: %w: no SessionID", ErrProtocol)
	}
	if ssl, _ := reply["EnableSessionSSL"].(bool); ssl {
		release := bindDeadline(ctx, c.raw, c.timeout())
		tc := tls.Client(TLSRecordConn(c.raw), cfg)
		err := tc.HandshakeContext(ctx)
		release()
		if err != nil {
			return fmt.Errorf("lockdown: StartSession: TLS handshake: %w", ctxErr(ctx, err))
		}
		c.tls = tc
		c.conn = tc
	}
	c.sessionID = id
	return nil
}

// StopSession ends the session; the connection continues in the clear (lockdown.md §4).
func (c *Client) StopSession(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionID == "" {
		return fmt.Errorf("lockdown: StopSession: %w", ErrSessionInactive)
	}
	_, err := c.request(ctx, map[string]any{"Request": "StopSession", "SessionID": c.sessionID})
	c.sessionID = ""
	if c.tls != nil {
		release := bindDeadline(ctx, c.raw, c.timeout())
		c.tls.CloseWrite() // close_notify; the clear stream follows
		release()
		c.tls = nil
		c.conn = c.raw
		c.afterStop = true
	}
	return err
}

// Service is a service lockdownd started.
type Service struct {
	Name string
	Port uint16
	SSL  bool // EnableServiceSSL: run TLS with the pair record after connecting
}

// StartService asks lockdownd to start a service (normally inside a session). escrowBag may
// be nil. An unknown service gives an error matching ErrInvalidService.
func (c *Client) StartService(ctx context.Context, name string, escrowBag []byte) (Service, error) {
	req := map[string]any{"Request": "StartService", "Service": name}
	if escrowBag != nil {
		req["EscrowBag"] = escrowBag
	}
	reply, err := c.Request(ctx, req)
	if err != nil {
		return Service{}, fmt.Errorf("%w (service %s)", err, name)
	}
	port, ok := reply["Port"].(uint64)
	if !ok || port == 0 || port > 0xFFFF {
		return Service{}, fmt.Errorf("lockdown: StartService %s: %w: Port %v", name, ErrProtocol, reply["Port"])
	}
	ssl, _ := reply["EnableServiceSSL"].(bool)
	return Service{Name: name, Port: uint16(port), SSL: ssl}, nil
}

// PairOptions tune Pair.
type PairOptions struct {
	// SystemBUID is the host's usbmuxd BUID (Mux.ReadBUID); "" generates one.
	SystemBUID string
	// HostID is the identity to register; "" generates a random one.
	HostID string
	// RetryInterval is how often Pair is re-sent while the Trust dialog is pending
	// (default PairRetryInterval). Waiting ends with ctx.
	RetryInterval time.Duration
	// OnPrompt, if set, is called once when the device reports the Trust dialog pending.
	OnPrompt func()
}

// Pair creates a fresh pair record for the device (reading DevicePublicKey, WiFiAddress and
// UniqueDeviceID) and registers it with lockdown Pair, waiting while the Trust dialog is
// pending (see SendPair). The returned record carries the device's EscrowBag.
func (c *Client) Pair(ctx context.Context, o PairOptions) (*pairrecord.Record, error) {
	pubv, err := c.GetValue(ctx, "", "DevicePublicKey")
	if err != nil {
		return nil, fmt.Errorf("lockdown: Pair: %w", err)
	}
	var pub []byte
	switch t := pubv.(type) {
	case []byte:
		pub = t
	case string:
		pub = []byte(t)
	default:
		return nil, fmt.Errorf("lockdown: Pair: %w: DevicePublicKey is %T", ErrProtocol, pubv)
	}
	wifi, _ := c.GetString(ctx, "", "WiFiAddress")
	udid, _ := c.GetString(ctx, "", "UniqueDeviceID")
	rec, err := pairrecord.New(pub, pairrecord.Options{
		HostID: o.HostID, SystemBUID: o.SystemBUID, WiFiMACAddress: wifi, UDID: udid,
	})
	if err != nil {
		return nil, fmt.Errorf("lockdown: Pair: %w", err)
	}
	if err := c.SendPair(ctx, rec, o); err != nil {
		return nil, err
	}
	return rec, nil
}

// SendPair sends lockdown Pair with rec (lockdown.md §4: PairRecord, ProtocolVersion "2",
// PairingOptions{ExtendedPairingErrors}) and stores the reply's EscrowBag in rec. While the
// device answers PairingDialogResponsePending it re-sends every RetryInterval until ctx ends;
// then the error matches both ErrPairingDialogResponsePending and ctx's error.
// UserDeniedPairing and PasswordProtected are returned at once.
func (c *Client) SendPair(ctx context.Context, rec *pairrecord.Record, o PairOptions) error {
	every := o.RetryInterval
	if every <= 0 {
		every = PairRetryInterval
	}
	prompted := false
	for {
		reply, err := c.Request(ctx, map[string]any{
			"Request":         "Pair",
			"PairRecord":      rec.PairRequest(),
			"ProtocolVersion": "2",
			"PairingOptions":  map[string]any{"ExtendedPairingErrors": true},
		})
		if errors.Is(err, ErrPairingDialogResponsePending) {
			if !prompted && o.OnPrompt != nil {
				o.OnPrompt()
			}
			prompted = true
			t := time.NewTimer(every)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("lockdown: Pair: gave up waiting for the Trust dialog: %w", errors.Join(err, ctx.Err()))
			}
		}
		if prompted && ctx.Err() != nil {
			// ctx ended during a re-sent request: still a dialog nobody answered.
			return fmt.Errorf("lockdown: Pair: gave up waiting for the Trust dialog: %w", errors.Join(ErrPairingDialogResponsePending, ctx.Err()))
		}
		if err != nil {
			return err
		}
		if bag, ok := reply["EscrowBag"].([]byte); ok {
			rec.EscrowBag = bag
		}
		if dc, ok := reply["DeviceCertificate"].([]byte); ok && len(dc) > 0 {
			rec.DeviceCertificate = dc
		}
		return nil
	}
}
