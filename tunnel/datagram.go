package tunnel

import (
	"errors"
	"io"
	"sync/atomic"
)

// ErrPacketDropped is wrapped by a datagram transport's Write error when it dropped that one
// packet (too large for the path) and can go on: the tunnel counts the drop and continues.
var ErrPacketDropped = errors.New("tunnel: packet dropped by the transport")

// datagramReader reads a message transport (one packet per Read, Options.Datagrams) and passes
// on only reads that are exactly one IPv6 packet, so that what it gives is the same stream of
// packets a stream transport carries. Anything else (QUIC's padding datagram, garbage) costs
// that datagram only, counted in dropped.
type datagramReader struct {
	r       io.Reader
	dropped *atomic.Uint64
}

func (d *datagramReader) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		if n > 0 {
			if CheckPacket(p[:n]) == nil {
				return n, err
			}
			d.dropped.Add(1)
		}
		if err != nil {
			return 0, err
		}
	}
}

// datagramWriter sends every packet with its own Write (one datagram each).
type datagramWriter struct {
	w       io.Writer
	dropped *atomic.Uint64
}

// WritePackets writes each packet as one datagram and returns how many went; a packet the
// transport drops is counted, not fatal.
func (d *datagramWriter) WritePackets(pkts [][]byte) (int, uint64, error) {
	sent, bytes := 0, uint64(0)
	for _, p := range pkts {
		if _, err := d.w.Write(p); err != nil {
			if errors.Is(err, ErrPacketDropped) {
				d.dropped.Add(1)
				continue
			}
			return sent, bytes, err
		}
		sent++
		bytes += uint64(len(p))
	}
	return sent, bytes, nil
}
