package pairing

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// RPPairingMagic starts every frame of the RPPairing binding (pairing.md §4.3).
const RPPairingMagic = "RPPairing"

// MaxFrameBody is the largest RPPairing body (its length is a BE16).
const MaxFrameBody = 0xFFFF

// ErrFrame reports a malformed RPPairing frame or envelope.
var ErrFrame = errors.New("pairing: bad RPPairing frame")

// AppendFrame appends the frame "RPPairing" || BE16(len) || body to dst.
func AppendFrame(dst, body []byte) ([]byte, error) {
	if len(body) > MaxFrameBody {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrFrame, len(body), MaxFrameBody)
	}
	dst = append(dst, RPPairingMagic...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
	return append(dst, body...), nil
}

// ReadFrame reads one frame and returns its body; the length field bounds it to MaxFrameBody.
func ReadFrame(r io.Reader) ([]byte, error) {
	var hdr [len(RPPairingMagic) + 2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if string(hdr[:len(RPPairingMagic)]) != RPPairingMagic {
		return nil, fmt.Errorf("%w: magic %q", ErrFrame, hdr[:len(RPPairingMagic)])
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[len(RPPairingMagic):]))
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrFrame, err)
	}
	return body, nil
}

// Envelope is one control-channel message (pairing.md §4.1).
type Envelope struct {
	Message        map[string]any `json:"message"`
	OriginatedBy   string         `json:"originatedBy"`
	SequenceNumber uint64         `json:"sequenceNumber"`
}

// MarshalEnvelope encodes e as compact JSON (byte strings as base64, keys sorted).
func MarshalEnvelope(e Envelope) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrFrame, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalEnvelope decodes a JSON envelope body; numbers stay json.Number.
func UnmarshalEnvelope(body []byte) (Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, fmt.Errorf("%w: JSON: %v", ErrFrame, err)
	}
	if dec.More() {
		return Envelope{}, fmt.Errorf("%w: trailing data after the envelope", ErrFrame)
	}
	if e.Message == nil {
		return Envelope{}, fmt.Errorf("%w: no message", ErrFrame)
	}
	return e, nil
}
