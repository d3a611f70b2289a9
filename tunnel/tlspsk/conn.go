package tlspsk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Config configures either side.
type Config struct {
	// PSK is the pre-shared key (the RemotePairing tunnel uses the 32-byte pair-verify secret).
	PSK []byte
	// Identity is the client's PSK identity (RemotePairing clients send ""); a server that sets
	// it rejects any other identity with unknown_psk_identity.
	Identity string
	// CheckIdentity makes a server compare the client identity with Identity.
	CheckIdentity bool
	// Suites overrides DefaultSuites (client offer order / server preference).
	Suites []uint16
}

func (c *Config) suites() []uint16 {
	if len(c.Suites) > 0 {
		return c.Suites
	}
	return DefaultSuites
}

// Conn is a TLS 1.2 PSK connection; the handshake runs on first Read or Write, or on Handshake.
type Conn struct {
	conn     net.Conn
	cfg      Config
	isClient bool

	hsMu    sync.Mutex
	hsDone  bool
	hsErr   error
	suite   *suite
	hsBuf   []byte // unparsed handshake bytes
	hsLog   []byte // transcript for Finished
	pending *protection

	in    sync.Mutex
	rx    *protection
	br    *bufio.Reader
	rbuf  []byte // the current record (appIn points into it)
	appIn []byte // decrypted application data not yet read
	rxErr error

	out    sync.Mutex
	tx     *protection
	txErr  error
	wbuf   []byte
	closed bool
}

// Client wraps conn as the client side.
func Client(conn net.Conn, cfg Config) *Conn { return &Conn{conn: conn, cfg: cfg, isClient: true} }

// Server wraps conn as the server side.
func Server(conn net.Conn, cfg Config) *Conn { return &Conn{conn: conn, cfg: cfg} }

// Handshake runs the handshake once; later calls return its result.
func (c *Conn) Handshake() error {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsDone {
		return c.hsErr
	}
	c.in.Lock()
	defer c.in.Unlock()
	if c.isClient {
		c.hsErr = c.clientHandshake()
	} else {
		c.hsErr = c.serverHandshake()
	}
	c.hsDone = true
	if c.hsErr != nil {
		c.hsErr = fmt.Errorf("tlspsk: %s handshake: %w", c.side(), c.hsErr)
	}
	return c.hsErr
}

func (c *Conn) side() string {
	if c.isClient {
		return "client"
	}
	return "server"
}

// Suite returns the negotiated suite's OpenSSL name ("" before the handshake).
func (c *Conn) Suite() string {
	if c.suite == nil {
		return ""
	}
	return c.suite.name
}

// AlertError is a fatal alert received from the peer.
type AlertError byte

var alertNames = map[byte]string{0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
	22: "record_overflow", 40: "handshake_failure", 47: "illegal_parameter", 50: "decode_error",
	51: "decrypt_error", 70: "protocol_version", 80: "internal_error", 100: "no_renegotiation",
	115: "unknown_psk_identity"}

func (a AlertError) Error() string {
	n := alertNames[byte(a)]
	if n == "" {
		n = fmt.Sprintf("alert %d", byte(a))
	}
	hint := ""
	if a == 20 || a == 51 {
		hint = " (wrong PSK?)"
	}
	return "peer sent alert " + n + hint
}

// localError is an error we answer with a fatal alert.
type localError struct {
	alert byte
	err   error
}

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

func fail(alert byte, format string, a ...any) error {
	return &localError{alert: alert, err: fmt.Errorf(format, a...)}
}

// writeRecord sends payload as one or more records of type typ. Call with out held.
func (c *Conn) writeRecord(typ byte, payload []byte) error {
	if c.txErr != nil {
		return c.txErr
	}
	buf := c.wbuf[:0]
	if len(payload) > MaxPlaintext { // several records: sealed into one pooled buffer
		bp, _ := writeBuffers.Get().(*[]byte)
		if bp == nil {
			b := make([]byte, 0, writeBatch+4*(maxCiphertext-MaxPlaintext+recordHeaderLen))
			bp = &b
		}
		defer func() { *bp = buf[:0]; writeBuffers.Put(bp) }()
		buf = (*bp)[:0]
	}
	for first := true; first || len(payload) > 0; first = false {
		chunk := payload[:min(len(payload), MaxPlaintext)]
		payload = payload[len(chunk):]
		start := len(buf)
		buf = append(buf, typ, 3, 3, 0, 0)
		if c.tx != nil {
			var err error
			if buf, err = c.tx.seal(buf, typ, chunk); err != nil {
				return err
			}
		} else {
			buf = append(buf, chunk...)
		}
		n := len(buf) - start - recordHeaderLen
		buf[start+3], buf[start+4] = byte(n>>8), byte(n)
		// One write(2) for up to writeBatch bytes of records, not one per record.
		if len(payload) == 0 || len(buf) >= writeBatch {
			if _, err := c.conn.Write(buf); err != nil {
				c.txErr = err
				return err
			}
			buf = buf[:0]
		}
	}
	if cap(buf) <= maxCiphertext+recordHeaderLen {
		c.wbuf = buf
	}
	return nil
}

// writeBatch is how many bytes of sealed records one Write of the underlying connection
// carries at most: a 64 KiB application Write (the tunnel's coalesced packets) leaves in one
// write(2) instead of four.
const writeBatch = 64 << 10

// writeBuffers lends multi-record writes their buffer, so an idle connection holds only one
// record's.
var writeBuffers sync.Pool

// sendAlert sends a fatal alert (best effort) for err if it is local.
func (c *Conn) sendAlert(err error) {
	var le *localError
	code := byte(80)
	if errors.As(err, &le) {
		code = le.alert
	}
	var ae AlertError
	if errors.As(err, &ae) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.out.Lock()
	defer c.out.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.writeRecord(recordAlert, []byte{2, code})
	_ = c.conn.SetWriteDeadline(time.Time{})
}

// readRecord reads and opens one record. Call with in held.
func (c *Conn) readRecord() (byte, []byte, error) {
	if c.rxErr != nil {
		return 0, nil, c.rxErr
	}
	typ, body, err := c.readRecordOnce()
	if err != nil {
		c.rxErr = err
	}
	return typ, body, err
}

func (c *Conn) readRecordOnce() (byte, []byte, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.conn, 2*maxCiphertext)
	}
	var hdr [recordHeaderLen]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return 0, nil, err
	}
	typ, n, err := recordHeader(hdr[:])
	if err != nil {
		return 0, nil, fail(50, "%v", err)
	}
	if cap(c.rbuf) < n {
		c.rbuf = make([]byte, maxCiphertext)
	}
	frag := c.rbuf[:n]
	if _, err := io.ReadFull(c.br, frag); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if c.rx != nil {
		if frag, err = c.rx.open(typ, frag); err != nil {
			return 0, nil, fail(20, "%w", err)
		}
		if len(frag) > MaxPlaintext {
			return 0, nil, fail(22, "record plaintext of %d bytes", len(frag))
		}
	}
	if typ == recordAlert {
		if len(frag) != 2 {
			return 0, nil, fail(50, "alert of %d bytes", len(frag))
		}
		if frag[1] == 0 {
			return 0, nil, io.EOF
		}
		if frag[0] == 1 { // warning: skip
			return c.readRecordOnce()
		}
		return 0, nil, AlertError(frag[1])
	}
	return typ, frag, nil
}

// Read reads application data.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.in.Lock()
	defer c.in.Unlock()
	for len(c.appIn) == 0 {
		typ, body, err := c.readRecord()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("tlspsk: read: %w", err)
				c.sendAlert(err)
			}
			return 0, err
		}
		switch typ {
		case recordApplicationData:
			c.appIn = body
		case recordHandshake: // HelloRequest or renegotiation: refuse politely, keep going
			c.out.Lock()
			_ = c.writeRecord(recordAlert, []byte{1, 100})
			c.out.Unlock()
		default:
			err := fail(10, "tlspsk: read: unexpected record type %d", typ)
			c.rxErr = err
			c.sendAlert(err)
			return 0, err
		}
	}
	n := copy(b, c.appIn)
	c.appIn = c.appIn[n:]
	return n, nil
}

// Write sends application data.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if err := c.writeRecord(recordApplicationData, b); err != nil {
		return 0, fmt.Errorf("tlspsk: write: %w", err)
	}
	return len(b), nil
}

// Close sends close_notify (if the handshake finished) and closes the connection.
func (c *Conn) Close() error {
	c.out.Lock()
	if !c.closed && c.tx != nil && c.txErr == nil {
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.writeRecord(recordAlert, []byte{1, 0})
	}
	c.closed = true
	c.out.Unlock()
	return c.conn.Close()
}

// CloseWrite sends close_notify and half-closes the underlying TCP connection if it can.
func (c *Conn) CloseWrite() error {
	c.out.Lock()
	defer c.out.Unlock()
	if c.tx != nil && c.txErr == nil {
		_ = c.writeRecord(recordAlert, []byte{1, 0})
	}
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *Conn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// HandshakeContext runs the handshake bounded by ctx (through the connection's deadline).
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(d)
		defer c.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	err := c.Handshake()
	stop()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = errors.Join(cerr, err)
		} else if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			err = errors.Join(context.DeadlineExceeded, err)
		}
	}
	return err
}
