package pairing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Transport carries control-channel envelopes: RPPairing frames (FramedTransport) or RemoteXPC.
type Transport interface {
	Send(ctx context.Context, e Envelope) error
	Recv(ctx context.Context) (Envelope, error)
}

// FramedTransport is the RPPairing binding over a stream connection; ctx bounds every call.
type FramedTransport struct {
	conn net.Conn
	wmu  sync.Mutex
	rmu  sync.Mutex
}

// NewFramedTransport wraps conn.
func NewFramedTransport(conn net.Conn) *FramedTransport { return &FramedTransport{conn: conn} }

// bound applies ctx to one I/O call through the connection's deadline.
func bound(ctx context.Context, set func(time.Time) error, io func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d, _ := ctx.Deadline()
	if err := set(d); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = set(time.Unix(1, 0)) })
	err := io()
	stop()
	return withContextErr(ctx, err)
}

// withContextErr names ctx's end in err when ctx is why the I/O failed (the connection deadline
// may fire a moment before ctx's own timer).
func withContextErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return errors.Join(cerr, err)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return errors.Join(context.DeadlineExceeded, err)
	}
	return err
}

// Send writes one frame.
func (f *FramedTransport) Send(ctx context.Context, e Envelope) error {
	body, err := MarshalEnvelope(e)
	if err != nil {
		return err
	}
	frame, err := AppendFrame(nil, body)
	if err != nil {
		return err
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return bound(ctx, f.conn.SetWriteDeadline, func() error {
		_, err := f.conn.Write(frame)
		return err
	})
}

// Recv reads one frame.
func (f *FramedTransport) Recv(ctx context.Context) (Envelope, error) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	var e Envelope
	err := bound(ctx, f.conn.SetReadDeadline, func() error {
		body, err := ReadFrame(f.conn)
		if err != nil {
			return err
		}
		e, err = UnmarshalEnvelope(body)
		return err
	})
	return e, err
}

// endpoint numbers one side's messages and parses the other side's.
type endpoint struct {
	t      Transport
	origin string
	seq    uint64
}

func (p *endpoint) send(ctx context.Context, stage string, msg Obj) error {
	err := p.t.Send(ctx, Envelope{Message: msg, OriginatedBy: p.origin, SequenceNumber: p.seq})
	if err != nil {
		return fmt.Errorf("pairing: %s: send: %w", stage, err)
	}
	p.seq++
	return nil
}

func (p *endpoint) recv(ctx context.Context, stage string) (Parsed, error) {
	e, err := p.t.Recv(ctx)
	if err != nil {
		return Parsed{}, fmt.Errorf("pairing: %s: receive: %w", stage, err)
	}
	m, err := ParseMessage(e.Message)
	if err != nil {
		return Parsed{}, fmt.Errorf("pairing: %s: %w", stage, err)
	}
	return m, nil
}
