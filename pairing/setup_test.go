package pairing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

func goldenHost(t testing.TB) Identity {
	t.Helper()
	alt := make([]byte, 16)
	for i := range alt {
		alt[i] = byte(i)
	}
	return Identity{Identifier: goldenHID, Key: ed25519.NewKeyFromSeed(unhex(t, goldenLTSKSeed)),
		Info: HostInfo(goldenHID, "iosmux-test", alt)}
}

func randomIdentity(t testing.TB, id string) Identity {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Identifier: id, Key: k, Info: Dict{
		{Key: "accountID", Value: id}, {Key: "altIRK", Value: make([]byte, 16)},
		{Key: "model", Value: "iPhone15,3"}, {Key: "name", Value: "sim"}, {Key: "remotepairing_udid", Value: "00008120-0001"},
	}}
}

func TestHKDFVectors(t *testing.T) {
	K := unhex(t, srpPairSetupVector.K)
	for _, c := range []struct{ salt, info, want string }{
		{hkdfSetupEncryptSalt, hkdfSetupEncryptInfo, "6dd5a9e51f5e7fd58b50c75a302a721a11ed8b405ff90dda28a0a7691a31f748"},
		{hkdfControllerSignSalt, hkdfControllerSignInfo, "f4178934e7f2097d23c737e796051f3c9500e2c5228d6d83a814dda7101b2b90"},
		{hkdfAccessorySignSalt, hkdfAccessorySignInfo, "a56d4e512a0931a9f42f04e956f6294a703d854fa651caea78d66f910c16c69f"},
		{"", hkdfClientEncryptInfo, "c7f04b4529e7ca513e00ffca8314bd27715ca6a0deb3a88756ddef31321414ad"},
		{"", hkdfServerEncryptInfo, "73a4abcc16da92a3a807b96087145f443a02b2b1d340617bf5cc2055ffb7a104"},
	} {
		checkHex(t, c.info, deriveKey(K, c.salt, c.info), c.want)
	}
	checkHex(t, "kPV", deriveKey(unhex(t, x25519Shared), hkdfVerifyEncryptSalt, hkdfVerifyEncryptInfo), goldenKPV)
	for label, want := range map[string]string{nonceSetupM5: "0000000050532d4d73673035", nonceSetupM6: "0000000050532d4d73673036",
		nonceVerifyM2: "0000000050562d4d73673032", nonceVerifyM3: "0000000050562d4d73673033"} {
		checkHex(t, label, labelNonce(label), want)
	}
}

// setupPair runs host against device; hostPIN/devPIN may differ.
type setupRun struct {
	host *SetupHost
	dev  *SetupDevice
}

func newSetupRun(t *testing.T, hostID, devID Identity, hostPIN, devPIN string, hostRand, devRand []byte) setupRun {
	t.Helper()
	h, err := NewSetupHost(hostID, hostPIN, readerOrNil(hostRand))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewSetupDevice(devID, devPIN, readerOrNil(devRand))
	if err != nil {
		t.Fatal(err)
	}
	return setupRun{h, d}
}

// readerOrNil serves fixed "random" bytes, or nil for crypto/rand.
func readerOrNil(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// TestPairSetupGolden drives both roles with the vectors' secrets and pins M1, M2 and M5 bytes.
func TestPairSetupGolden(t *testing.T) {
	dev := randomIdentity(t, "device-1")
	r := newSetupRun(t, goldenHost(t), dev, DefaultSetupPIN, DefaultSetupPIN,
		unhex(t, srpVecA), append(unhex(t, srpVecSalt), unhex(t, srpVecB)...))
	m1 := r.host.M1()
	checkHex(t, "M1", m1, "000100060101")
	m2, err := r.dev.HandleM1(m1)
	if err != nil {
		t.Fatal(err)
	}
	B := unhex(t, srpPairSetupVector.B)
	wantM2 := append(append(append(unhex(t, "0601020210"), unhex(t, srpVecSalt)...), append([]byte{3, 0xff}, B[:255]...)...), append([]byte{3, 0x81}, B[255:]...)...)
	if !bytes.Equal(m2, wantM2) || len(m2) != 409 {
		t.Fatalf("M2 (%d bytes) differs from test-vectors.md §6", len(m2))
	}
	m3, err := r.host.HandleM2(m2)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := DecodeTLV8(m3)
	A, _ := x.Get(TypePublicKey)
	proof, _ := x.Get(TypeProof)
	checkHex(t, "M3 A", A, srpPairSetupVector.A)
	checkHex(t, "M3 proof", proof, srpPairSetupVector.M1)
	m4, err := r.dev.HandleM3(m3)
	if err != nil {
		t.Fatal(err)
	}
	m5, err := r.host.HandleM4(m4)
	if err != nil {
		t.Fatal(err)
	}
	ct := unhex(t, goldenM5Cipher)
	wantM5 := append(append(append([]byte{5, 0xff}, ct[:255]...), append([]byte{5, 0x59}, ct[255:]...)...), 6, 1, 5)
	if !bytes.Equal(m5, wantM5) || len(m5) != 351 {
		t.Fatalf("M5 differs from test-vectors.md §8.1:\n got %x\nwant %x", m5, wantM5)
	}
	m6, host, err := r.dev.HandleM5(m5)
	if err != nil {
		t.Fatal(err)
	}
	if host.Identifier != goldenHID || hex.EncodeToString(host.PublicKey) != goldenLTPK {
		t.Fatalf("device learnt host %q %x", host.Identifier, host.PublicKey)
	}
	ob, _ := EncodeOPACK(host.Info)
	checkHex(t, "host info as received", ob, goldenInfoOPACK)
	peer, err := r.host.HandleM6(m6)
	if err != nil {
		t.Fatal(err)
	}
	if peer.Identifier != dev.Identifier || !peer.PublicKey.Equal(dev.Key.Public()) {
		t.Fatalf("host learnt device %q", peer.Identifier)
	}
	if v, _ := peer.Info.Get("remotepairing_udid"); v != "00008120-0001" {
		t.Fatalf("device info remotepairing_udid = %v", v)
	}
	checkHex(t, "host K", r.host.SessionKey(), srpPairSetupVector.K)
	checkHex(t, "device K", r.dev.SessionKey(), srpPairSetupVector.K)
}

// runSetup drives a full exchange and returns the first error of either side.
func runSetup(t *testing.T, r setupRun, tamper func(step int, b []byte) []byte) (*Peer, *Peer, error) {
	t.Helper()
	if tamper == nil {
		tamper = func(_ int, b []byte) []byte { return b }
	}
	m2, err := r.dev.HandleM1(tamper(1, r.host.M1()))
	if err != nil {
		return nil, nil, err
	}
	m3, err := r.host.HandleM2(tamper(2, m2))
	if err != nil {
		return nil, nil, err
	}
	m4, devErr := r.dev.HandleM3(tamper(3, m3))
	m5, err := r.host.HandleM4(tamper(4, m4))
	if devErr != nil {
		return nil, nil, errors.Join(devErr, err)
	}
	if err != nil {
		return nil, nil, err
	}
	m6, hostPeer, devErr := r.dev.HandleM5(tamper(5, m5))
	if devErr != nil {
		if m6 != nil {
			if _, err := r.host.HandleM6(m6); err != nil {
				return nil, nil, errors.Join(devErr, err)
			}
		}
		return nil, nil, devErr
	}
	devPeer, err := r.host.HandleM6(tamper(6, m6))
	return devPeer, hostPeer, err
}

func TestPairSetupHostAgainstDevice(t *testing.T) {
	host, dev := randomIdentity(t, "HOST-ID"), randomIdentity(t, "DEV-ID")
	r := newSetupRun(t, host, dev, "123456", "123456", nil, nil)
	dp, hp, err := runSetup(t, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dp.Identifier != "DEV-ID" || hp.Identifier != "HOST-ID" || !bytes.Equal(r.host.SessionKey(), r.dev.SessionKey()) {
		t.Fatal("peers disagree")
	}
}

func TestPairSetupWrongPIN(t *testing.T) {
	r := newSetupRun(t, randomIdentity(t, "H"), randomIdentity(t, "D"), "000000", "999999", nil, nil)
	_, _, err := runSetup(t, r, nil)
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Code != ErrorAuthentication || pe.Stage != "pair-setup M4" {
		t.Fatalf("host did not see M4 ERROR=authentication: %v", err)
	}
	if !errors.Is(err, ErrSRP) {
		t.Fatalf("device did not reject the proof: %v", err)
	}
	if r.host.SessionKey() != nil || r.dev.SessionKey() != nil {
		t.Fatal("a key survived a wrong PIN")
	}
}

// flip returns a copy of b with the last byte of the value of TLV type typ changed.
func flip(t *testing.T, b []byte, typ byte) []byte {
	t.Helper()
	x, err := DecodeTLV8(b)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := x.Get(typ)
	if !ok {
		t.Fatalf("no type %d to tamper", typ)
	}
	v = append([]byte{}, v...)
	v[len(v)-1] ^= 0x01
	x.Set(typ, v)
	return x.Encode()
}

func TestPairSetupTampered(t *testing.T) {
	cases := []struct {
		name string
		step int
		typ  byte
		want error
	}{
		{"M2 B", 2, TypePublicKey, ErrSRP}, // proofs no longer match
		{"M3 proof", 3, TypeProof, ErrSRP}, // device rejects
		{"M4 proof", 4, TypeProof, ErrSRP}, // host rejects the device proof
		{"M5 cipher", 5, TypeEncryptedData, ErrDecrypt},
		{"M6 cipher", 6, TypeEncryptedData, ErrDecrypt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newSetupRun(t, randomIdentity(t, "H"), randomIdentity(t, "D"), "000000", "000000", nil, nil)
			_, _, err := runSetup(t, r, func(step int, b []byte) []byte {
				if step == c.step {
					return flip(t, b, c.typ)
				}
				return b
			})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestPairSetupForgedIdentity: a correct M5 encryption carrying a signature by the wrong key.
func TestPairSetupForgedIdentity(t *testing.T) {
	host := randomIdentity(t, "H")
	r := newSetupRun(t, host, randomIdentity(t, "D"), "000000", "000000", nil, nil)
	m2, _ := r.dev.HandleM1(r.host.M1())
	m3, _ := r.host.HandleM2(m2)
	m4, _ := r.dev.HandleM3(m3)
	if _, err := r.host.HandleM4(m4); err != nil {
		t.Fatal(err)
	}
	// Re-seal an inner TLV whose PUBLIC_KEY is not the signer's.
	K := r.host.SessionKey()
	inner, _ := sealIdentity(host, deriveKey(K, hkdfControllerSignSalt, hkdfControllerSignInfo))
	x, _ := DecodeTLV8(inner)
	other := randomIdentity(t, "H")
	x.Set(TypePublicKey, other.public())
	var m5 TLV8
	m5.Set(TypeEncryptedData, sealLabel(deriveKey(K, hkdfSetupEncryptSalt, hkdfSetupEncryptInfo), nonceSetupM5, x.Encode()))
	m5.SetByte(TypeState, StateM5)
	m6, peer, err := r.dev.HandleM5(m5.Encode())
	if !errors.Is(err, ErrProtocol) || peer != nil {
		t.Fatalf("forged M5 accepted: %v", err)
	}
	if _, err := r.host.HandleM6(m6); err == nil {
		t.Fatal("host took the failure M6 as success")
	}
}

func TestPairSetupOrderAndGarbage(t *testing.T) {
	r := newSetupRun(t, randomIdentity(t, "H"), randomIdentity(t, "D"), "000000", "000000", nil, nil)
	if _, err := r.host.HandleM4(errorTLV(4, 0)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("M4 before M2: %v", err)
	}
	if _, err := r.dev.HandleM3([]byte{6, 1, 3}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("M3 before M1: %v", err)
	}
	if _, err := r.dev.HandleM1([]byte{6, 5}); !errors.Is(err, ErrTLVTruncated) {
		t.Fatalf("truncated M1: %v", err)
	}
	d, _ := NewSetupDevice(randomIdentity(t, "D"), "000000", nil)
	if _, err := d.HandleM1([]byte{0, 1, 2, 6, 1, 1}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("pair-verify METHOD taken as setup: %v", err)
	}
	if _, err := NewSetupHost(Identity{}, "", nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("empty identity: %v", err)
	}
}
