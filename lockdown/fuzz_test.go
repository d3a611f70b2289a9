package lockdown

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/iosmux/iosmux/internal/peertest"
	"howett.net/plist"
)

const fuzzMax = 1 << 16

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = WritePlist(&buf, map[string]any{"Request": "QueryType", "Label": "iosmux"})
	f.Add(bytes.Clone(buf.Bytes()))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 'a'})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	dev := DeviceAttached{MessageType: MsgAttached, DeviceID: 4, Properties: DeviceProperties{ConnectionType: "USB", DeviceID: 4, SerialNumber: "x"}}
	if bin, err := plist.Marshal(DeviceList{DeviceList: []DeviceAttached{dev, dev}}, plist.BinaryFormat); err == nil {
		buf.Reset()
		_ = WriteFrame(&buf, bin)
		f.Add(bytes.Clone(buf.Bytes()))
	}
	buf.Reset()
	_ = WriteFrame(&buf, nestedBplist(5, 2))
	f.Add(bytes.Clone(buf.Bytes()))
	if b, err := os.ReadFile("../testdata/usbmuxresponse.plist"); err == nil {
		f.Add(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadFrame(bytes.NewReader(data), fuzzMax)
		if err != nil {
			if len(data) >= 4 {
				n := binary.BigEndian.Uint32(data)
				if n <= fuzzMax && int(n) <= len(data)-4 {
					t.Fatalf("valid frame rejected: %v", err)
				}
			}
			return
		}
		n := 4 + len(body)
		if len(body) > fuzzMax || !bytes.Equal(body, data[4:n]) {
			t.Fatal("body differs from input")
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, body); err != nil || !bytes.Equal(out.Bytes(), data[:n]) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		var v any
		if UnmarshalPlist(body, &v) == nil {
			var v2 any
			if err := ReadPlist(bytes.NewReader(data), &v2); err != nil {
				t.Fatalf("ReadPlist failed where UnmarshalPlist succeeded: %v", err)
			}
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	if b, err := os.ReadFile("../testdata/readdevices.bin"); err == nil {
		f.Add(b)
	}
	add := func(m *Message) {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	rec, _ := DeviceRecord{DeviceID: 1, ProductID: 0x12a8, SerialNumber: "abc", Location: 3}.MarshalBinary()
	conn, _ := ConnectRequest{DeviceID: 1, Port: 62078}.MarshalBinary()
	add(&Message{Header: Header{Type: TypeResult, Tag: 1}, Payload: EncodeResult(ResultOK)})
	add(&Message{Header: Header{Type: TypeConnect, Tag: 2}, Payload: conn})
	add(&Message{Header: Header{Type: TypeDeviceAdd}, Payload: rec})
	add(&Message{Header: Header{Type: TypeDeviceRemove}, Payload: EncodeDeviceID(5)})
	add(&Message{Header: Header{Type: TypeDevicePaired}, Payload: EncodeDeviceID(5)})
	dev := DeviceAttached{MessageType: MsgAttached, DeviceID: 4, Properties: DeviceProperties{ConnectionType: "USB", DeviceID: 4, SerialNumber: "x"}}
	for _, v := range []any{dev, DeviceList{DeviceList: []DeviceAttached{dev}}, Result{MessageType: MsgResult, Number: 3}, NewConnectRequest(DefaultClient, 4, 62078)} {
		m, _ := NewPlistMessage(9, v)
		add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		peertest.BoundAllocs(t, len(data), 64, func() { fuzzMessage(t, data) })
	})
}

// fuzzMessage reads one usbmuxd message, checks its re-encoding and decodes its payload and
// (as the Listen loop would) the device event it may carry.
func fuzzMessage(t *testing.T, data []byte) {
	m, err := ReadMessage(bytes.NewReader(data), fuzzMax)
	if err != nil {
		return
	}
	decodeEvent(m)
	if int(m.Length) != HeaderSize+len(m.Payload) || int(m.Length) > fuzzMax {
		t.Fatalf("length %d, payload %d", m.Length, len(m.Payload))
	}
	enc, err := m.MarshalBinary()
	if err != nil || !bytes.Equal(enc, data[:m.Length]) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	checkPayload(t, m)
}

// checkPayload decodes m's payload by type and checks re-encoding where it is lossless.
func checkPayload(t *testing.T, m *Message) {
	p := m.Payload
	switch {
	case m.Version == VersionPlist && m.Type == TypePlist:
		var v any
		_ = m.DecodePlist(&v)
		_, _ = m.PlistMessageType()
		_ = m.DecodePlist(&Request{})
		_ = m.DecodePlist(&Result{})
		_ = m.DecodePlist(&DeviceAttached{})
		_ = m.DecodePlist(&DeviceList{})
	case m.Type == TypeResult:
		if c, err := DecodeResult(p); err == nil && !bytes.Equal(EncodeResult(c), p) {
			t.Fatal("RESULT re-encoding differs")
		}
	case m.Type == TypeDeviceRemove || m.Type == TypeDevicePaired:
		if id, err := DecodeDeviceID(p); err == nil && !bytes.Equal(EncodeDeviceID(id), p) {
			t.Fatal("device id re-encoding differs")
		}
	case m.Type == TypeConnect:
		c, err := DecodeConnect(p)
		if err != nil {
			return
		}
		b, _ := c.MarshalBinary()
		if p[6] == 0 && p[7] == 0 && !bytes.Equal(b, p) {
			t.Fatal("CONNECT re-encoding differs")
		}
		if c2, _ := DecodeConnect(b); c2 != c {
			t.Fatal("CONNECT not stable")
		}
	case m.Type == TypeDeviceAdd:
		d, err := DecodeDeviceRecord(p)
		if err != nil {
			return
		}
		b, err := d.MarshalBinary()
		if err != nil {
			if len(d.SerialNumber) < SerialFieldSize {
				t.Fatalf("decoded record does not re-encode: %v", err)
			}
			return
		}
		canonical := bytes.Equal(p[6+len(d.SerialNumber):264], make([]byte, 264-6-len(d.SerialNumber)))
		if canonical && !bytes.Equal(b, p) {
			t.Fatal("DEVICE_ADD re-encoding differs")
		}
		if d2, _ := DecodeDeviceRecord(b); d2 != d {
			t.Fatal("DEVICE_ADD not stable")
		}
	}
}

// FuzzUnmarshalPlist decodes arbitrary bytes as the plist of a lockdown or usbmuxd reply, as
// the clients do: no panic, and allocation bounded by the input's size (plist bombs refused).
func FuzzUnmarshalPlist(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><plist><dict><key>Request</key><string>QueryType</string><key>Type</key><string>com.apple.mobile.lockdown</string></dict></plist>`))
	f.Add(peertest.PlistBomb(2, 3, 8))
	if b, err := os.ReadFile("../testdata/usbmuxresponse.plist"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		peertest.BoundAllocs(t, len(data), 1024, func() {
			var m map[string]any
			UnmarshalPlist(data, &m)
			var a DeviceAttached
			UnmarshalPlist(data, &a)
		})
	})
}
