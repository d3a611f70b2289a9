package lockdown

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"howett.net/plist"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, body := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{0xAB}, 200000)} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, body); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint32(buf.Bytes()); int(got) != len(body) {
			t.Fatalf("length prefix %d, want %d", got, len(body))
		}
		got, err := ReadFrame(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("body mismatch (len %d vs %d)", len(got), len(body))
		}
		if buf.Len() != 0 {
			t.Fatalf("%d bytes left over", buf.Len())
		}
	}
}

func TestReadFrameTooLarge(t *testing.T) {
	r := bytes.NewReader([]byte{0x00, 0x00, 0x01, 0x01, 'a'})
	if _, err := ReadFrame(r, 256); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	r = bytes.NewReader([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	if _, err := ReadFrame(r, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	cases := map[string][]byte{
		"short header": {0x00, 0x00},
		"short body":   {0x00, 0x00, 0x00, 0x05, 'a', 'b'},
		"lying length": {0x00, 0x3F, 0xFF, 0xFF, 'a'},
	}
	for name, in := range cases {
		if _, err := ReadFrame(bytes.NewReader(in), MaxFrameSize); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: err = %v, want io.ErrUnexpectedEOF", name, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 0); err != io.EOF {
		t.Errorf("empty stream: err = %v, want io.EOF", err)
	}
}

func TestReadFrameLyingLengthAllocation(t *testing.T) {
	in := []byte{0x00, 0x3F, 0xFF, 0xFF, 'a'}
	allocs := testing.AllocsPerRun(10, func() {
		_, _ = ReadFrame(bytes.NewReader(in), MaxFrameSize)
	})
	if allocs > 10 {
		t.Fatalf("allocs = %v", allocs)
	}
	var ms1, ms2 runtimeMem
	ms1.read()
	for range 50 {
		_, _ = ReadFrame(bytes.NewReader(in), MaxFrameSize)
	}
	ms2.read()
	if per := (ms2.total - ms1.total) / 50; per > 2*readChunk {
		t.Fatalf("allocated %d bytes per lying frame", per)
	}
}

type plistMsg struct {
	Request string
	Label   string
	Value   int `plist:",omitempty"`
}

func TestPlistFrameXMLAndBinary(t *testing.T) {
	want := plistMsg{Request: "QueryType", Label: "iosmux", Value: 7}
	var buf bytes.Buffer
	if err := WritePlist(&buf, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes()[4:], []byte("<?xml")) {
		t.Fatalf("WritePlist did not emit XML: %q", buf.Bytes()[4:])
	}
	var got plistMsg
	if err := ReadPlist(&buf, &got); err != nil || got != want {
		t.Fatalf("XML: got %+v, %v", got, err)
	}
	bin, err := plist.Marshal(want, plist.BinaryFormat)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := WriteFrame(&buf, bin); err != nil {
		t.Fatal(err)
	}
	got = plistMsg{}
	if err := ReadPlist(&buf, &got); err != nil || got != want {
		t.Fatalf("binary: got %+v, %v", got, err)
	}
}

func TestUnmarshalPlistRejectsText(t *testing.T) {
	var v map[string]any
	for _, in := range []string{`{Request = "x";}`, "", "bplist00garbage"} {
		if err := UnmarshalPlist([]byte(in), &v); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// runtimeMem samples cumulative heap allocation.
type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}
