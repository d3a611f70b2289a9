package pairing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// srpB is B from test-vectors.md §1.3.
const srpB = `
6a075f0ac047b7a8ff915d6c2d375eb27297c17f40e7cd03b7ca8571a5875559
1c2e11ea6784e4a354328e158d2079fe65b27cb2b7b186d7cb130d2608f06971
8a317a95745a4a40eaea91ec1c59c75c75acd6479ab87cf4d98b8774b0b717a9
215d6bff4f3461ebf6a8726b167516890a8bc3f9b25074084f86bfec3a6ce150
00f81c313ce7a39cfcbb78de1407662810289a98522a81153306aa924e7e001b
30592c836637e53ab5ece29f6558303d7e2790c9d58c26c5a9f0a17959e36c73
a6c94503db064987a0f51dd318f2370d4692ce1f34afc35ce510b77ecb16935b
c644f3551b926edb4fbccc1fcf6a5ff26d151aeae90158ea30fd3a656def6781
e073e32ae5d42a70b408b1be3b72f5de6700f0ca3d91ac3ba7ad5fcc373188ec
cffc101406d7e96e3e357c2102a5cbe6673209683d8920c7de17cf4c8ebfd109
12dccfda33d673c07141098d8b80befe3d49c707bc18f84241ecd960a130cb28
41f813a5d060a693ea9ba14d63c4a41e8b0bcf986ddd29a87a70d4f142eed888`

// srpSalt is s from test-vectors.md §1.2/§1.3.
const srpSalt = "beb25379d1a8581eb5a727673a2441ee"

func TestTLV8SmallVectors(t *testing.T) {
	type kv struct{ t, v byte }
	cases := []struct {
		hex   string
		items []kv
	}{
		{"000100060101", []kv{{TypeMethod, MethodPairSetup}, {TypeState, StateM1}}},
		{"060102", []kv{{TypeState, StateM2}}},
		{"060104070102", []kv{{TypeState, StateM4}, {TypeError, ErrorAuthentication}}},
		{"060104", []kv{{TypeState, StateM4}}},
	}
	for _, c := range cases {
		var x TLV8
		for _, it := range c.items {
			x.SetByte(it.t, it.v)
		}
		if got := hex.EncodeToString(x.Encode()); got != c.hex {
			t.Errorf("encode = %s, want %s", got, c.hex)
		}
		d, err := DecodeTLV8(unhex(t, c.hex))
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Types()) != len(c.items) {
			t.Fatalf("%s: types = %x", c.hex, d.Types())
		}
		for i, it := range c.items {
			if v, ok := d.GetByte(it.t); !ok || v != it.v || d.Types()[i] != it.t {
				t.Errorf("%s: type %#x = %d, %v", c.hex, it.t, v, ok)
			}
		}
	}
}

func TestTLV8FragmentationM2(t *testing.T) {
	salt, b := unhex(t, srpSalt), unhex(t, srpB)
	if len(b) != 384 {
		t.Fatalf("len(B) = %d", len(b))
	}
	var x TLV8
	x.SetByte(TypeState, StateM2)
	x.Set(TypeSalt, salt)
	x.Set(TypePublicKey, b)
	enc := x.Encode()
	want := unhex(t, "060102"+"0210"+srpSalt+"03ff"+hex.EncodeToString(b[:255])+"0381"+hex.EncodeToString(b[255:]))
	if len(enc) != 409 || !bytes.Equal(enc, want) {
		t.Fatalf("M2 encoding (%d bytes) differs from the 255+129 split", len(enc))
	}
	d, err := DecodeTLV8(enc)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Get(TypePublicKey); !bytes.Equal(v, b) {
		t.Fatal("pmd3 split: B not reassembled")
	}
	if v, _ := d.Get(TypeSalt); !bytes.Equal(v, salt) {
		t.Fatal("salt mismatch")
	}

	idev := unhex(t, "060102"+"03fe"+hex.EncodeToString(b[:254])+"0382"+hex.EncodeToString(b[254:]))
	d, err = DecodeTLV8(idev)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Get(TypePublicKey); !bytes.Equal(v, b) {
		t.Fatal("idevice split: B not reassembled")
	}
	if !bytes.Equal(d.Encode(), unhex(t, "060102"+"03ff"+hex.EncodeToString(b[:255])+"0381"+hex.EncodeToString(b[255:]))) {
		t.Fatal("re-encoding of idevice split is not the canonical 255+129 split")
	}
}

func TestTLV8NonAdjacentAndOrder(t *testing.T) {
	d, err := DecodeTLV8(unhex(t, "0302aabb 060103 0301cc 0500 0501dd"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Types(), []byte{TypePublicKey, TypeState, TypeEncryptedData}) {
		t.Fatalf("types = %x", d.Types())
	}
	if v, _ := d.Get(TypePublicKey); !bytes.Equal(v, unhex(t, "aabbcc")) {
		t.Fatalf("public key = %x", v)
	}
	if v, _ := d.Get(TypeEncryptedData); !bytes.Equal(v, []byte{0xdd}) {
		t.Fatalf("encrypted data = %x", v)
	}
	if _, ok := d.Get(TypeProof); ok {
		t.Fatal("absent type reported present")
	}
}

func TestTLV8EmptyAndBoundaries(t *testing.T) {
	var x TLV8
	x.Set(TypeSeparator, nil)
	x.Set(TypeIdentifier, []byte{})
	if got := hex.EncodeToString(x.Encode()); got != "ff000100" {
		t.Fatalf("empty values = %s", got)
	}
	for _, n := range []int{255, 256, 510, 511} {
		var y TLV8
		y.Set(TypeEncryptedData, bytes.Repeat([]byte{7}, n))
		enc := y.Encode()
		if items := (n + 254) / 255; len(enc) != n+2*items {
			t.Fatalf("n=%d: %d bytes", n, len(enc))
		}
		d, err := DecodeTLV8(enc)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := d.Get(TypeEncryptedData); len(v) != n {
			t.Fatalf("n=%d: decoded %d", n, len(v))
		}
	}
	x.Set(TypeIdentifier, []byte("host"))
	if !bytes.Equal(x.Types(), []byte{TypeSeparator, TypeIdentifier}) {
		t.Fatalf("Set reordered types: %x", x.Types())
	}
}

func TestTLV8Truncated(t *testing.T) {
	for _, s := range []string{"06", "0601", "060201", "060101 03ff00"} {
		if _, err := DecodeTLV8(unhex(t, s)); !errors.Is(err, ErrTLVTruncated) {
			t.Errorf("%s: err = %v", s, err)
		}
	}
	if d, err := DecodeTLV8(nil); err != nil || len(d.Types()) != 0 {
		t.Fatalf("empty input: %v", err)
	}
}
