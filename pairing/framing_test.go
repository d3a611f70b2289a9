package pairing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFramingHandshakeVector(t *testing.T) {
	e := Envelope{Message: PlainRequest(RequestHandshake, Obj{"hostOptions": Obj{"attemptPairVerify": true}, "wireProtocolVersion": WireProtocolVersion}), OriginatedBy: "host"}
	body, err := MarshalEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != framingHandshakeBody {
		t.Fatalf("body\n got %s\nwant %s", body, framingHandshakeBody)
	}
	frame, _ := AppendFrame(nil, body)
	checkHex(t, "frame", frame, framingHandshakeFrame)

	got, err := ReadFrame(bytes.NewReader(frame))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read back: %v", err)
	}
	back, err := UnmarshalEnvelope(got)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(back.Message)
	if err != nil || m.Kind != KindRequest || m.Name != RequestHandshake {
		t.Fatalf("parsed %+v %v", m, err)
	}
	if v, ok := Uint(m.Body["wireProtocolVersion"]); !ok || v != 19 {
		t.Fatalf("wireProtocolVersion %v", m.Body["wireProtocolVersion"])
	}
}

// TestFramingEncryptedVector pins the RPPairing frame of the §8.3 createListener request.
func TestFramingEncryptedVector(t *testing.T) {
	e := Envelope{Message: EncryptedMessage(unhex(t, goldenReqCipher)), OriginatedBy: "host", SequenceNumber: 3}
	body, err := MarshalEnvelope(e)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != goldenReqFrameBody {
		t.Fatalf("body\n got %s\nwant %s", body, goldenReqFrameBody)
	}
	frame, _ := AppendFrame(nil, body)
	if len(frame) != 389 || !bytes.HasPrefix(frame, unhex(t, "525050616972696e67017a")) {
		t.Fatalf("frame %d bytes, header %x", len(frame), frame[:11])
	}
	back, _ := UnmarshalEnvelope(body)
	m, err := ParseMessage(back.Message)
	if err != nil || m.Kind != KindEncrypted || !bytes.Equal(m.Cipher, unhex(t, goldenReqCipher)) {
		t.Fatalf("parsed %v", err)
	}
	if back.SequenceNumber != 3 || back.OriginatedBy != "host" {
		t.Fatal("sequence number lost")
	}
}

func TestFramingBounds(t *testing.T) {
	if _, err := AppendFrame(nil, make([]byte, MaxFrameBody+1)); !errors.Is(err, ErrFrame) {
		t.Fatalf("oversized body framed: %v", err)
	}
	max, err := AppendFrame(nil, make([]byte, MaxFrameBody))
	if err != nil || len(max) != MaxFrameBody+11 {
		t.Fatalf("largest body: %v", err)
	}
	// A reader never takes more than the header's length, whatever follows.
	r := bytes.NewReader(append(max, "RPPairing"...))
	body, err := ReadFrame(r)
	if err != nil || len(body) != MaxFrameBody || r.Len() != 9 {
		t.Fatalf("read %d, left %d: %v", len(body), r.Len(), err)
	}
	bad := []struct {
		name string
		in   []byte
		want error
	}{
		{"magic", []byte("RPPairinG\x00\x00"), ErrFrame},
		{"short body", append([]byte("RPPairing\x00\x05"), "ab"...), ErrFrame},
		{"short header", []byte("RPPai"), io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
	}
	for _, c := range bad {
		if _, err := ReadFrame(bytes.NewReader(c.in)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	hdr := binary.BigEndian.AppendUint16([]byte(RPPairingMagic), 0xFFFF)
	if _, err := ReadFrame(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("x"))); !errors.Is(err, ErrFrame) {
		t.Fatalf("truncated max body: %v", err)
	}
}

func TestParseMessageErrors(t *testing.T) {
	for _, body := range []string{
		`{}`, `{"message":{}}`, `{"message":{"plain":1}}`, `{"message":{"plain":{"_0":{"a":{},"b":{}}}}}`,
		`{"message":{"plain":{"_0":{"weird":{"_0":{}}}}}}`, `{"message":{"plain":{"_0":{"response":{"_0":{"x":{}}}}}}}`,
		`{"message":{"streamEncrypted":{"_0":"%%%"}}}`, `{"message":{"streamEncrypted":{"_0":5}}}`,
		`{"message":{"plain":{"_0":{"event":{"_0":{"x":{"_0":[1]}}}}}}}`, `{"message":{}} trailing`, `[1]`,
	} {
		e, err := UnmarshalEnvelope([]byte(body))
		if err == nil {
			_, err = ParseMessage(e.Message)
		}
		if !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v", body, err)
		}
	}
	// An event with no payload parses with an empty body.
	e, _ := UnmarshalEnvelope([]byte(`{"message":{"plain":{"_0":{"event":{"_0":{"pairVerifyFailed":{}}}}}},"originatedBy":"host","sequenceNumber":1}`))
	m, err := ParseMessage(e.Message)
	if err != nil || m.Name != EventPairVerifyFailed || len(m.Body) != 0 {
		t.Fatalf("%+v %v", m, err)
	}
}
