package tlspsk

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scripted is a net.Conn whose reads come from a fixed input and whose writes are discarded.
type scripted struct {
	r *bytes.Reader
}

func (s *scripted) Read(b []byte) (int, error)         { return s.r.Read(b) }
func (s *scripted) Write(b []byte) (int, error)        { return len(b), nil }
func (s *scripted) Close() error                       { return nil }
func (s *scripted) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (s *scripted) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (s *scripted) SetDeadline(t time.Time) error      { return nil }
func (s *scripted) SetReadDeadline(t time.Time) error  { return nil }
func (s *scripted) SetWriteDeadline(t time.Time) error { return nil }

// clientHelloRecord is a real ClientHello from our client, as a seed.
func clientHelloRecord(t testing.TB) []byte {
	var w bytes.Buffer
	c := Client(&recorder{w: &w}, Config{PSK: []byte{1}})
	_ = c.Handshake()
	return w.Bytes()
}

type recorder struct {
	scripted
	w *bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) { return r.w.Write(b) }
func (r *recorder) Read([]byte) (int, error)    { return 0, io.EOF }

// FuzzServerHandshake feeds arbitrary bytes to the server's record and handshake parsers.
func FuzzServerHandshake(f *testing.F) {
	f.Add(clientHelloRecord(f))
	f.Add([]byte{22, 3, 3, 0, 4, 1, 0xff, 0xff, 0xff})
	f.Add([]byte{21, 3, 3, 0, 2, 2, 20})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := Server(&scripted{r: bytes.NewReader(in)}, Config{PSK: []byte("k")})
		if err := s.Handshake(); err == nil {
			t.Fatal("handshake completed from a script that cannot know the keys")
		}
	})
}

// FuzzRecordOpen feeds arbitrary fragments to every suite's record decryption, and checks that
// what seal produces opens back.
func FuzzRecordOpen(f *testing.F) {
	f.Add([]byte("hello"), byte(23))
	f.Add(make([]byte, 64), byte(22))
	f.Fuzz(func(t *testing.T, in []byte, typ byte) {
		for _, id := range DefaultSuites {
			s := suites[id]
			ck, _ := s.keyBlock(make([]byte, 48), make([]byte, 32), make([]byte, 32))
			rx, _ := s.newProtection(ck)
			if pt, err := rx.open(typ, append([]byte{}, in...)); err == nil && len(pt) > len(in) {
				t.Fatalf("%s: plaintext longer than the fragment", s.name)
			}
			tx, _ := s.newProtection(ck)
			rx2, _ := s.newProtection(ck)
			if len(in) <= MaxPlaintext {
				ct, err := tx.seal(nil, typ, in)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := rx2.open(typ, append([]byte{}, ct...))
				if err != nil || !bytes.Equal(pt, in) {
					t.Fatalf("%s: round trip: %v", s.name, err)
				}
				if len(ct) > len(in)+2048 {
					t.Fatalf("%s: expansion %d", s.name, len(ct)-len(in))
				}
			}
		}
	})
}

// TestRecordBounds proves incoming records and handshake messages are bounded.
func TestRecordBounds(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"record too long", []byte{22, 3, 3, 0x48, 0x01}, "record of 18433 bytes exceeds 18432"},
		{"not TLS", []byte{22, 2, 0, 0, 1, 0}, "not TLS"},
		{"unknown type", []byte{99, 3, 3, 0, 1, 0}, "record type 99"},
		{"handshake > 32 KiB", []byte{22, 3, 3, 0, 4, 1, 0x01, 0, 0}, "handshake message of 65536 bytes exceeds 32768"},
		{"wrong first message", []byte{22, 3, 3, 0, 4, 16, 0, 0, 0}, "got handshake message 16, want 1"},
		{"app data first", []byte{23, 3, 3, 0, 1, 0}, "unexpected record type 23"},
		{"alert", []byte{21, 3, 3, 0, 2, 2, 40}, "peer sent alert handshake_failure"},
	}
	for _, c := range cases {
		s := Server(&scripted{r: bytes.NewReader(c.in)}, Config{PSK: []byte("k")})
		if err := s.Handshake(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A handshake message split over many records is limited in total too.
	var in []byte
	in = append(in, 22, 3, 3, 0, 4, 1, 0x00, 0x80, 0x00) // claims 32 KiB: allowed size
	for i := 0; i < 9; i++ {
		in = append(in, 22, 3, 3, 0x10, 0x00)
		in = append(in, make([]byte, 0x1000)...)
	}
	s := Server(&scripted{r: bytes.NewReader(in)}, Config{PSK: []byte("k")})
	if err := s.Handshake(); err == nil {
		t.Fatal("32 KiB of zeros taken as a ClientHello")
	}
	// Alerts map to AlertError with a wrong-PSK hint.
	s = Server(&scripted{r: bytes.NewReader(cases[6].in)}, Config{PSK: []byte("k")})
	var ae AlertError
	if err := s.Handshake(); !errors.As(err, &ae) || ae != 40 {
		t.Fatalf("alert: %v", err)
	}
	if AlertError(20).Error() != "peer sent alert bad_record_mac (wrong PSK?)" {
		t.Fatal(AlertError(20).Error())
	}
}
