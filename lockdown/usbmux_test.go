package lockdown

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadDevicesFixture(t *testing.T) {
	raw := readFixture(t, "readdevices.bin")
	m, err := ReadMessage(bytes.NewReader(raw), 0)
	if err != nil {
		t.Fatal(err)
	}
	wantHdr := Header{Length: 357, Version: VersionPlist, Type: TypePlist, Tag: 0}
	if m.Header != wantHdr {
		t.Fatalf("header = %+v, want %+v", m.Header, wantHdr)
	}
	if !bytes.Equal(m.Payload, raw[HeaderSize:]) {
		t.Fatal("payload bytes not preserved")
	}
	var req Request
	if err := m.DecodePlist(&req); err != nil {
		t.Fatal(err)
	}
	wantReq := Request{MessageType: MsgListDevices, ClientVersionString: "go-usbmux-0.0.1", ProgName: "go-usbmux"}
	if !reflect.DeepEqual(req, wantReq) {
		t.Fatalf("request = %+v, want %+v", req, wantReq)
	}
	var out bytes.Buffer
	if err := WriteMessage(&out, m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), raw) {
		t.Fatal("re-encoding differs from fixture")
	}
	// Encoding the decoded request from scratch reproduces the fixture too.
	m2, err := NewPlistMessage(0, req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := m2.MarshalBinary(); !bytes.Equal(b, raw) {
		t.Fatalf("NewPlistMessage differs from fixture:\n%q", b)
	}
}

func TestUsbmuxResponseFixture(t *testing.T) {
	m := &Message{Header: Header{Version: VersionPlist, Type: TypePlist, Tag: 7}, Payload: readFixture(t, "usbmuxresponse.plist")}
	var res Result
	if err := m.DecodePlist(&res); err != nil {
		t.Fatal(err)
	}
	if res != (Result{MessageType: "ErrorName", Number: 5}) {
		t.Fatalf("result = %+v", res)
	}
	if mt, err := m.PlistMessageType(); err != nil || mt != "ErrorName" {
		t.Fatalf("PlistMessageType = %q, %v", mt, err)
	}
}

func TestPlistRequestsRoundTrip(t *testing.T) {
	c := ClientInfo{ClientVersionString: "iosmux-test", ProgName: "iosmux", BundleID: "org.iosmux"}
	conn := NewConnectRequest(c, 3, 62078)
	if conn.PortNumber != 32498 || conn.LibUSBMuxVersion != 3 {
		t.Fatalf("connect = %+v", conn)
	}
	save := NewRequest(c, MsgSavePairRecord)
	save.PairRecordID, save.PairRecordData, save.DeviceID = "00008110-001A2B3C", []byte("<plist/>"), 9
	for _, req := range []Request{NewRequest(DefaultClient, MsgListen), conn, save} {
		m, err := NewPlistMessage(42, req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
		m2, err := ReadMessage(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m2.Tag != 42 || m2.Version != VersionPlist || m2.Type != TypePlist {
			t.Fatalf("header = %+v", m2.Header)
		}
		if !bytes.Contains(m2.Payload, []byte("<key>kLibUSBMuxVersion</key><integer>3</integer>")) {
			t.Fatalf("payload lacks kLibUSBMuxVersion: %s", m2.Payload)
		}
		var got Request
		if err := m2.DecodePlist(&got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, req) {
			t.Fatalf("got %+v, want %+v", got, req)
		}
	}
}

func TestPlistRepliesRoundTrip(t *testing.T) {
	dev := DeviceAttached{MessageType: MsgAttached, DeviceID: 4, Properties: DeviceProperties{
		ConnectionSpeed: 480000000, ConnectionType: "USB", DeviceID: 4,
		LocationID: 0x14100000, ProductID: 0x12a8, SerialNumber: "00008110-001A2B3C4D5E801E",
	}}
	cases := []struct{ in, out any }{
		{dev, &DeviceAttached{}},
		{DeviceList{DeviceList: []DeviceAttached{dev}}, &DeviceList{}},
		{DeviceEvent{MessageType: MsgDetached, DeviceID: 4}, &DeviceEvent{}},
		{Result{MessageType: MsgResult, Number: int(ResultBadDevice)}, &Result{}},
		{PairRecordReply{PairRecordData: []byte{1, 2, 3}}, &PairRecordReply{}},
		{BUIDReply{BUID: "1234-5678"}, &BUIDReply{}},
	}
	for _, c := range cases {
		m, err := NewPlistMessage(1, c.in)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.DecodePlist(c.out); err != nil {
			t.Fatal(err)
		}
		if got := reflect.ValueOf(c.out).Elem().Interface(); !reflect.DeepEqual(got, c.in) {
			t.Fatalf("got %+v, want %+v", got, c.in)
		}
	}
}

func TestDecodePlistWrongType(t *testing.T) {
	m := &Message{Header: Header{Version: VersionBinary, Type: TypeResult}, Payload: EncodeResult(ResultOK)}
	if err := m.DecodePlist(&Result{}); !errors.Is(err, ErrPayload) {
		t.Fatalf("err = %v", err)
	}
}

func TestBinaryPayloads(t *testing.T) {
	for _, code := range []ResultCode{ResultOK, ResultBadCommand, ResultBadDevice, ResultConnRefused, ResultNoSuchService, ResultBadVersion} {
		p := EncodeResult(code)
		if got, err := DecodeResult(p); err != nil || got != code || len(p) != ResultPayloadSize {
			t.Fatalf("result %d: %d, %v", code, got, err)
		}
	}
	for _, id := range []uint32{0, 1, 0xDEADBEEF} {
		p := EncodeDeviceID(id)
		if got, err := DecodeDeviceID(p); err != nil || got != id {
			t.Fatalf("device id %d: %d, %v", id, got, err)
		}
	}

	c := ConnectRequest{DeviceID: 0x01020304, Port: 62078}
	p, _ := c.MarshalBinary()
	if want := []byte{0x04, 0x03, 0x02, 0x01, 0xF2, 0x7E, 0x00, 0x00}; !bytes.Equal(p, want) {
		t.Fatalf("connect = % x, want % x", p, want)
	}
	if got, err := DecodeConnect(p); err != nil || got != c {
		t.Fatalf("connect decode = %+v, %v", got, err)
	}

	d := DeviceRecord{DeviceID: 7, ProductID: 0x12a8, SerialNumber: "0123456789abcdef0123456789abcdef01234567", Location: 0x14100000}
	p, err := d.MarshalBinary()
	if err != nil || len(p) != DeviceRecordSize {
		t.Fatalf("device record: len %d, %v", len(p), err)
	}
	if p[0] != 7 || p[4] != 0xa8 || p[5] != 0x12 || p[6] != '0' || p[6+40] != 0 || p[264] != 0 || p[266] != 0x10 || p[267] != 0x14 {
		t.Fatalf("device record layout: % x", p)
	}
	if got, err := DecodeDeviceRecord(p); err != nil || got != d {
		t.Fatalf("device record decode = %+v, %v", got, err)
	}
	if _, err := (DeviceRecord{SerialNumber: string(make([]byte, 256))}).MarshalBinary(); err == nil {
		t.Fatal("over-long serial accepted")
	}
	if _, err := (DeviceRecord{SerialNumber: "a\x00b"}).MarshalBinary(); err == nil {
		t.Fatal("serial with NUL accepted")
	}

	for _, bad := range [][]byte{nil, {1, 2, 3}, make([]byte, 5)} {
		if _, err := DecodeResult(bad); !errors.Is(err, ErrPayload) {
			t.Errorf("DecodeResult(% x) err = %v", bad, err)
		}
		if _, err := DecodeDeviceID(bad); !errors.Is(err, ErrPayload) {
			t.Errorf("DecodeDeviceID(% x) err = %v", bad, err)
		}
		if _, err := DecodeConnect(bad); !errors.Is(err, ErrPayload) {
			t.Errorf("DecodeConnect(% x) err = %v", bad, err)
		}
		if _, err := DecodeDeviceRecord(bad); !errors.Is(err, ErrPayload) {
			t.Errorf("DecodeDeviceRecord(% x) err = %v", bad, err)
		}
	}
}

func TestBinaryMessageRoundTrip(t *testing.T) {
	rec, _ := DeviceRecord{DeviceID: 1, ProductID: 2, SerialNumber: "abc", Location: 3}.MarshalBinary()
	conn, _ := ConnectRequest{DeviceID: 1, Port: 22}.MarshalBinary()
	msgs := []*Message{
		{Header: Header{Type: TypeResult, Tag: 1}, Payload: EncodeResult(ResultConnRefused)},
		{Header: Header{Type: TypeConnect, Tag: 2}, Payload: conn},
		{Header: Header{Type: TypeListen, Tag: 3}},
		{Header: Header{Type: TypeDeviceAdd}, Payload: rec},
		{Header: Header{Type: TypeDeviceRemove}, Payload: EncodeDeviceID(1)},
		{Header: Header{Type: TypeDevicePaired}, Payload: EncodeDeviceID(1)},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range msgs {
		got, err := ReadMessage(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if int(got.Length) != HeaderSize+len(want.Payload) || got.Type != want.Type || got.Tag != want.Tag || got.Version != VersionBinary {
			t.Fatalf("header = %+v", got.Header)
		}
		if !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("payload = % x, want % x", got.Payload, want.Payload)
		}
	}
	if _, err := ReadMessage(&buf, 0); err != io.EOF {
		t.Fatalf("end of stream err = %v", err)
	}
}

func TestPortSwap(t *testing.T) {
	if got := PortToWire(62078); got != 32498 {
		t.Fatalf("PortToWire(62078) = %d", got)
	}
	if got := PortFromWire(32498); got != 62078 {
		t.Fatalf("PortFromWire(32498) = %d", got)
	}
	for _, p := range []uint16{0, 1, 0x00FF, 0xFF00, 22, 58783, 65535} {
		if PortFromWire(PortToWire(p)) != p {
			t.Fatalf("round trip %d", p)
		}
	}
}

func TestReadMessageErrors(t *testing.T) {
	raw := readFixture(t, "readdevices.bin")
	if _, err := ReadMessage(bytes.NewReader(raw), 356); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("max 356: err = %v", err)
	}
	if _, err := ReadMessage(bytes.NewReader(raw), 357); err != nil {
		t.Errorf("max 357: err = %v", err)
	}
	for _, n := range []int{1, 15, 16, 100, len(raw) - 1} {
		if _, err := ReadMessage(bytes.NewReader(raw[:n]), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated to %d: err = %v", n, err)
		}
	}
	short := []byte{15, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0}
	if _, err := ReadMessage(bytes.NewReader(short), 0); !errors.Is(err, ErrShortMessage) {
		t.Errorf("length 15: err = %v", err)
	}
	huge := []byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0}
	if _, err := ReadMessage(bytes.NewReader(huge), 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("length 4G: err = %v", err)
	}
}
