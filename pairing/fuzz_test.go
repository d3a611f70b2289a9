package pairing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/xpc"
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

// FuzzRPPairing feeds arbitrary bytes through the RPPairing frame reader, the envelope decoder
// and the message parser: no panic, bodies bounded, and a decoded envelope re-encodes and re-parses.
func FuzzRPPairing(f *testing.F) {
	for _, body := range []string{framingHandshakeBody, goldenReqFrameBody,
		`{"message":{"plain":{"_0":{"event":{"_0":{"pairingData":{"_0":{"data":"AAEABgEB","kind":"setupManualPairing","startNewSession":true}}}}}}},"originatedBy":"host","sequenceNumber":1}`} {
		fr, _ := AppendFrame(nil, []byte(body))
		f.Add(fr)
	}
	f.Add([]byte("RPPairing\xff\xff{"))
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err := ReadFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(body) > MaxFrameBody {
			t.Fatalf("body of %d bytes", len(body))
		}
		e, err := UnmarshalEnvelope(body)
		if err != nil {
			return
		}
		m, perr := ParseMessage(e.Message)
		if perr == nil && m.Kind == KindEvent && m.Name == EventPairingData {
			if data, err := Bytes(m.Body["data"]); err == nil {
				_, _ = DecodeTLV8(data)
			}
		}
		again, err := MarshalEnvelope(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := UnmarshalEnvelope(again)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
		if _, perr2 := ParseMessage(e2.Message); (perr == nil) != (perr2 == nil) {
			t.Fatalf("parse differs after round trip: %v vs %v", perr, perr2)
		}
	})
}

// FuzzPairingSteps feeds arbitrary TLV8 to every step of both roles: errors only, never a panic,
// and never a session key from garbage.
func FuzzPairingSteps(f *testing.F) {
	f.Add([]byte{0, 1, 0, 6, 1, 1})
	f.Add([]byte{6, 1, 2, 2, 1, 0, 3, 1, 5})
	f.Add([]byte{6, 1, 3, 5, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	id := Identity{Identifier: "F", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	f.Fuzz(func(t *testing.T, in []byte) {
		sd, _ := NewSetupDevice(id, "000000", nil)
		if m2, err := sd.HandleM1(in); err == nil {
			_, _ = sd.HandleM3(append(append([]byte{}, m2...), in...))
			_, _, _ = sd.HandleM5(in)
		}
		sh, _ := NewSetupHost(id, "000000", nil)
		sh.M1()
		if _, err := sh.HandleM2(in); err == nil {
			_, _ = sh.HandleM4(in)
			if sh.SessionKey() != nil {
				t.Fatal("host keyed by garbage M4")
			}
		}
		vd, _ := NewVerifyDevice(id, func(string) (ed25519.PublicKey, bool) { return id.public(), true }, nil)
		_, _ = vd.HandleM1(in)
		_, _ = vd.HandleM3(in)
		if vd.SharedSecret() != nil {
			t.Fatal("device verified garbage")
		}
		vh, _ := NewVerifyHost(id, nil)
		vh.M1()
		_, _ = vh.HandleM2(in)
		_ = vh.HandleM4(in)
	})
}

// FuzzXPCEnvelope decodes arbitrary XPC messages as control-channel envelopes: errors only.
func FuzzXPCEnvelope(f *testing.F) {
	f.Add(unhex(f, xpcHandshakeVector))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := xpc.DecodeMessage(in)
		if err != nil {
			return
		}
		d, ok := m.Body.(*xpc.Dict)
		if !ok {
			return
		}
		e, err := EnvelopeFromXPC(d)
		if err != nil {
			return
		}
		if _, err := ParseMessage(e.Message); err != nil {
			return
		}
		if _, err := EnvelopeToXPC(e); err != nil {
			t.Fatalf("decoded envelope does not re-encode: %v", err)
		}
	})
}
