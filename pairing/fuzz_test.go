package pairing

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
)

func FuzzDecodeTLV8(f *testing.F) {
	for _, s := range []string{"000100060101", "060102", "060104070102", "060104", "0302aabb0601030301cc", "ff00", "06"} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	var m2 TLV8
	m2.SetByte(TypeState, StateM2)
	m2.Set(TypePublicKey, bytes.Repeat([]byte{0x5a}, 384))
	f.Add(m2.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		peertest.BoundAllocs(t, len(data), 256, func() {
			x, err := DecodeTLV8(data)
			if err != nil {
				return
			}
			total := 0
			for _, typ := range x.Types() {
				v, _ := x.Get(typ)
				total += len(v)
			}
			if total > len(data) {
				t.Fatalf("decoded %d value bytes from %d input bytes", total, len(data))
			}
			enc := x.Encode()
			y, err := DecodeTLV8(enc)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			if !bytes.Equal(x.Types(), y.Types()) {
				t.Fatalf("types %x != %x", x.Types(), y.Types())
			}
			for _, typ := range x.Types() {
				a, _ := x.Get(typ)
				b, _ := y.Get(typ)
				if !bytes.Equal(a, b) {
					t.Fatalf("type %#x: %x != %x", typ, a, b)
				}
			}
			if !bytes.Equal(y.Encode(), enc) {
				t.Fatal("encoding not stable")
			}
		})
	})
}

func FuzzDecodeOPACK(f *testing.F) {
	seeds := []string{
		ideviceVector, "e0", "e1436b65794576616c7565", "e1436b657973cdffab", "40", "6121" + hex.EncodeToString(bytes.Repeat([]byte("a"), 33)),
		"80000102030405060708090a0b0c0d0e0f", "08", "2f", "3028", "313412", "01", "02", "04",
		"df080903", "ef416b0103", "d44161a03028a1", "d37101c100c20000", "e2416b4176a0a1",
		"350000c03f", "360000000000000440", "05000102030405060708090a0b0c0d0e0f", "060807060504030201",
		"62030061626363", "9202000102", "c400000000",
	}
	for _, s := range seeds {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		peertest.BoundAllocs(t, len(data), 256, func() {
			v, err := DecodeOPACK(data)
			if err != nil {
				return
			}
			enc, err := EncodeOPACK(v)
			if err != nil {
				t.Fatalf("decoded value does not encode: %v", err)
			}
			v2, err := DecodeOPACK(enc)
			if err != nil {
				t.Fatalf("re-decode: %v", err)
			}
			enc2, err := EncodeOPACK(v2)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("encoding not stable: %x != %x (%v)", enc, enc2, err)
			}
		})
	})
}
