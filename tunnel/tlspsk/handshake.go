package tlspsk

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Handshake message types (RFC 5246 §7.4).
const (
	hsHelloRequest      byte = 0
	hsClientHello       byte = 1
	hsServerHello       byte = 2
	hsServerKeyExchange byte = 12
	hsServerHelloDone   byte = 14
	hsClientKeyExchange byte = 16
	hsFinished          byte = 20

	// maxHandshakeMsg bounds one handshake message (ours are tiny; ClientHellos are < 2 KiB).
	maxHandshakeMsg             = 1 << 15
	extRenegotiationInfo uint16 = 0xff01
	finishedLen                 = 12
	// maxIdentity is the longest PSK identity (RFC 4279 §5.3: implementations must take 128).
	maxIdentity = 1 << 10
)

// send writes one handshake message and logs it for Finished.
func (c *Conn) sendHandshake(typ byte, body []byte) error {
	msg := make([]byte, 4, 4+len(body))
	msg[0] = typ
	msg[1], msg[2], msg[3] = byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	msg = append(msg, body...)
	c.hsLog = append(c.hsLog, msg...)
	c.out.Lock()
	defer c.out.Unlock()
	return c.writeRecord(recordHandshake, msg)
}

// sendCCS sends ChangeCipherSpec and switches outgoing protection to p.
func (c *Conn) sendCCS(p *protection) error {
	c.out.Lock()
	defer c.out.Unlock()
	if err := c.writeRecord(recordChangeCipherSpec, []byte{1}); err != nil {
		return err
	}
	c.tx = p
	return nil
}

// readHandshake returns the next handshake message of type want (logged for Finished). A
// ChangeCipherSpec switches incoming protection to c.pending when one is expected.
func (c *Conn) readHandshake(want byte) ([]byte, error) {
	for {
		if len(c.hsBuf) >= 4 {
			n := int(c.hsBuf[1])<<16 | int(c.hsBuf[2])<<8 | int(c.hsBuf[3])
			if n > maxHandshakeMsg {
				return nil, fail(50, "handshake message of %d bytes exceeds %d", n, maxHandshakeMsg)
			}
			if len(c.hsBuf) >= 4+n {
				typ := c.hsBuf[0]
				msg := c.hsBuf[:4+n]
				c.hsBuf = c.hsBuf[4+n:]
				if typ == hsHelloRequest && c.isClient {
					continue
				}
				if typ != want {
					return nil, fail(10, "got handshake message %d, want %d", typ, want)
				}
				if typ != hsFinished { // Finished is logged by the caller after checking it
					c.hsLog = append(c.hsLog, msg...)
				}
				return append([]byte{}, msg[4:]...), nil
			}
		}
		typ, body, err := c.readRecord()
		if err != nil {
			return nil, err
		}
		switch typ {
		case recordHandshake:
			if len(c.hsBuf)+len(body) > maxHandshakeMsg+4 {
				return nil, fail(50, "handshake data exceeds %d bytes", maxHandshakeMsg)
			}
			c.hsBuf = append(c.hsBuf, body...)
		case recordChangeCipherSpec:
			if c.pending == nil || want != hsFinished || len(c.hsBuf) != 0 || len(body) != 1 || body[0] != 1 {
				return nil, fail(10, "unexpected ChangeCipherSpec")
			}
			c.rx, c.pending = c.pending, nil
		default:
			return nil, fail(10, "unexpected record type %d during the handshake", typ)
		}
	}
}

func (c *Conn) transcriptHash() []byte {
	h := c.suite.prf()
	h.Write(c.hsLog)
	return h.Sum(nil)
}

func (c *Conn) finished(master []byte, label string) []byte {
	return prf(c.suite.prf, master, label, c.transcriptHash(), finishedLen)
}

// readFinished reads the peer's Finished and checks it against label.
func (c *Conn) readFinished(master []byte, label string) error {
	want := c.finished(master, label)
	got, err := c.readHandshake(hsFinished)
	if err != nil {
		if errors.Is(err, errBadRecordMAC) {
			return fmt.Errorf("peer Finished: %w (wrong PSK?)", err)
		}
		return err
	}
	if !hmac.Equal(got, want) {
		return fail(51, "peer Finished does not verify (wrong PSK?)")
	}
	c.hsLog = append(c.hsLog, hsFinished, 0, 0, finishedLen)
	c.hsLog = append(c.hsLog, got...)
	return nil
}

// setupKeys derives the master secret and both directions' protection.
func (c *Conn) setupKeys(clientRandom, serverRandom []byte) (master []byte, client, server *protection, err error) {
	seed := append(append([]byte{}, clientRandom...), serverRandom...)
	master = prf(c.suite.prf, pskPremaster(c.cfg.PSK), "master secret", seed, 48)
	ck, sk := c.suite.keyBlock(master, clientRandom, serverRandom)
	if client, err = c.suite.newProtection(ck); err != nil {
		return nil, nil, nil, err
	}
	if server, err = c.suite.newProtection(sk); err != nil {
		return nil, nil, nil, err
	}
	return master, client, server, nil
}

func random32() ([]byte, error) {
	b := make([]byte, 32)
	_, err := io.ReadFull(rand.Reader, b)
	return b, err
}

// reader is a bounds-checked parser of handshake bodies.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || len(r.b) < n {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}
func (r *reader) u16() int {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

// extensions parses an optional extension block and reports renegotiation_info (empty) seen.
func (r *reader) extensions() (secureReneg bool, err error) {
	if len(r.b) == 0 {
		return false, nil
	}
	ext := &reader{b: r.take(r.u16())}
	for len(ext.b) > 0 && !ext.bad {
		typ, body := ext.u16(), ext.take(ext.u16())
		if uint16(typ) == extRenegotiationInfo && !ext.bad {
			if len(body) != 1 || body[0] != 0 {
				return false, fail(40, "renegotiation_info is not empty")
			}
			secureReneg = true
		}
	}
	if ext.bad || r.bad || len(r.b) != 0 {
		return false, fail(50, "malformed extensions")
	}
	return secureReneg, nil
}

func (c *Conn) clientHandshake() error {
	if len(c.cfg.PSK) == 0 || len(c.cfg.PSK) > 0xFFFF {
		return errors.New("PSK must be 1…65535 bytes")
	}
	if len(c.cfg.Identity) > maxIdentity {
		return fmt.Errorf("PSK identity of %d bytes exceeds %d", len(c.cfg.Identity), maxIdentity)
	}
	clientRandom, err := random32()
	if err != nil {
		return err
	}
	offer := c.cfg.suites()
	hello := binary.BigEndian.AppendUint16(nil, versionTLS12)
	hello = append(hello, clientRandom...)
	hello = append(hello, 0) // no session ID
	hello = binary.BigEndian.AppendUint16(hello, uint16(2*len(offer)))
	for _, s := range offer {
		hello = binary.BigEndian.AppendUint16(hello, s)
	}
	hello = append(hello, 1, 0)                      // null compression
	hello = append(hello, 0, 5, 0xff, 0x01, 0, 1, 0) // renegotiation_info, empty
	if err := c.sendHandshake(hsClientHello, hello); err != nil {
		return err
	}
	err = c.clientFlight(clientRandom, offer)
	if err != nil {
		c.sendAlert(err)
	}
	return err
}

func (c *Conn) clientFlight(clientRandom []byte, offer []uint16) error {
	sh, err := c.readHandshake(hsServerHello)
	if err != nil {
		return fmt.Errorf("ServerHello: %w", err)
	}
	r := &reader{b: sh}
	ver := r.u16()
	serverRandom := r.take(32)
	r.take(r.u8()) // session ID
	id := uint16(r.u16())
	comp := r.u8()
	if r.bad {
		return fail(50, "ServerHello: truncated")
	}
	if _, err := r.extensions(); err != nil {
		return fmt.Errorf("ServerHello: %w", err)
	}
	if ver != versionTLS12 {
		return fail(70, "ServerHello: version %#04x, want TLS 1.2", ver)
	}
	if comp != 0 || !slices.Contains(offer, id) || suites[id] == nil {
		return fail(47, "ServerHello: suite %#04x / compression %d not offered", id, comp)
	}
	c.suite = suites[id]
	msg, err := c.readHandshakeEither(hsServerKeyExchange, hsServerHelloDone)
	if err != nil {
		return err
	}
	if msg.typ == hsServerKeyExchange { // PSK identity hint: ignored
		hr := &reader{b: msg.body}
		hr.take(hr.u16())
		if hr.bad || len(hr.b) != 0 {
			return fail(50, "ServerKeyExchange: malformed identity hint")
		}
		if _, err := c.readHandshake(hsServerHelloDone); err != nil {
			return fmt.Errorf("ServerHelloDone: %w", err)
		}
	} else if len(msg.body) != 0 {
		return fail(50, "ServerHelloDone is not empty")
	}
	master, client, server, err := c.setupKeys(clientRandom, serverRandom)
	if err != nil {
		return err
	}
	cke := binary.BigEndian.AppendUint16(nil, uint16(len(c.cfg.Identity)))
	if err := c.sendHandshake(hsClientKeyExchange, append(cke, c.cfg.Identity...)); err != nil {
		return err
	}
	if err := c.sendCCS(client); err != nil {
		return err
	}
	if err := c.sendHandshake(hsFinished, c.finished(master, "client finished")); err != nil {
		return err
	}
	c.pending = server
	if err := c.readFinished(master, "server finished"); err != nil {
		return fmt.Errorf("server Finished: %w", err)
	}
	return nil
}

type hsMsg struct {
	typ  byte
	body []byte
}

// readHandshakeEither reads the next message, which must be one of a or b.
func (c *Conn) readHandshakeEither(a, b byte) (hsMsg, error) {
	// Peek the type from the buffer by reading a full message of whichever type arrives.
	for len(c.hsBuf) < 4 {
		typ, body, err := c.readRecord()
		if err != nil {
			return hsMsg{}, err
		}
		if typ != recordHandshake {
			return hsMsg{}, fail(10, "unexpected record type %d during the handshake", typ)
		}
		c.hsBuf = append(c.hsBuf, body...)
	}
	t := c.hsBuf[0]
	if t != a && t != b {
		return hsMsg{}, fail(10, "got handshake message %d, want %d or %d", t, a, b)
	}
	body, err := c.readHandshake(t)
	return hsMsg{t, body}, err
}

func (c *Conn) serverHandshake() error {
	err := c.serverFlight()
	if err != nil {
		c.sendAlert(err)
	}
	return err
}

func (c *Conn) serverFlight() error {
	if len(c.cfg.PSK) == 0 || len(c.cfg.PSK) > 0xFFFF {
		return errors.New("PSK must be 1…65535 bytes")
	}
	ch, err := c.readHandshake(hsClientHello)
	if err != nil {
		return fmt.Errorf("ClientHello: %w", err)
	}
	r := &reader{b: ch}
	ver := r.u16()
	clientRandom := r.take(32)
	if sid := r.take(r.u8()); len(sid) > 32 {
		return fail(47, "ClientHello: session ID of %d bytes", len(sid))
	}
	sb := &reader{b: r.take(r.u16())}
	comp := r.take(r.u8())
	if r.bad || len(sb.b)%2 != 0 {
		return fail(50, "ClientHello: truncated")
	}
	reneg, err := r.extensions()
	if err != nil {
		return fmt.Errorf("ClientHello: %w", err)
	}
	if ver < versionTLS12 {
		return fail(70, "ClientHello: version %#04x below TLS 1.2", ver)
	}
	if !slices.Contains(comp, 0) {
		return fail(40, "ClientHello: no null compression")
	}
	var offered []uint16
	for len(sb.b) > 0 {
		s := uint16(sb.u16())
		if s == scsvRenegotiation {
			reneg = true
		}
		offered = append(offered, s)
	}
	for _, id := range c.cfg.suites() {
		if slices.Contains(offered, id) && suites[id] != nil {
			c.suite = suites[id]
			break
		}
	}
	if c.suite == nil {
		return fail(40, "ClientHello: no common PSK cipher suite (offered %04x)", offered)
	}
	serverRandom, err := random32()
	if err != nil {
		return err
	}
	hello := binary.BigEndian.AppendUint16(nil, versionTLS12)
	hello = append(hello, serverRandom...)
	hello = append(hello, 0)
	hello = binary.BigEndian.AppendUint16(hello, c.suite.id)
	hello = append(hello, 0)
	if reneg {
		hello = append(hello, 0, 5, 0xff, 0x01, 0, 1, 0)
	}
	if err := c.sendHandshake(hsServerHello, hello); err != nil {
		return err
	}
	if err := c.sendHandshake(hsServerHelloDone, nil); err != nil {
		return err
	}
	cke, err := c.readHandshake(hsClientKeyExchange)
	if err != nil {
		return fmt.Errorf("ClientKeyExchange: %w", err)
	}
	kr := &reader{b: cke}
	identity := kr.take(kr.u16())
	if kr.bad || len(kr.b) != 0 || len(identity) > maxIdentity {
		return fail(50, "ClientKeyExchange: malformed PSK identity")
	}
	if c.cfg.CheckIdentity && string(identity) != c.cfg.Identity {
		return fail(115, "ClientKeyExchange: unknown PSK identity %q", identity)
	}
	master, client, server, err := c.setupKeys(clientRandom, serverRandom)
	if err != nil {
		return err
	}
	c.pending = client
	if err := c.readFinished(master, "client finished"); err != nil {
		return fmt.Errorf("client Finished: %w", err)
	}
	if err := c.sendCCS(server); err != nil {
		return err
	}
	return c.sendHandshake(hsFinished, c.finished(master, "server finished"))
}
