package xpc

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
)

// FuzzDecodeMessage: any input either fails cleanly or decodes to a message whose encoding is
// a fixed point (decode(encode(m)) == m, encode(decode(encode(m))) == encode(m)).
func FuzzDecodeMessage(f *testing.F) {
	for _, name := range []string{"xpc_empty_dict.bin", "xpc_dict.bin"} {
		b, err := os.ReadFile("../testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(unhex(f, handshakeVector))
	f.Fuzz(func(t *testing.T, b []byte) {
		peertest.BoundAllocs(t, len(b), 256, func() {
			m, err := DecodeMessage(b)
			if err != nil {
				return
			}
			out, err := m.Encode()
			if err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
			if len(out) > len(b)+len(b)/2+64 {
				t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(out))
			}
			m2, err := DecodeMessage(out)
			if err != nil {
				t.Fatalf("re-encoded message does not decode: %v", err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("decode(encode(m)) != m")
			}
			out2, _ := m2.Encode()
			if !bytes.Equal(out, out2) {
				t.Fatal("encoding is not a fixed point")
			}
		})
	})
}
