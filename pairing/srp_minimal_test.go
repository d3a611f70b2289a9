package pairing

import (
	"bytes"
	"math/big"
	"testing"
)

// TestSRPDeviceAcceptsUnpaddedM1: appium-ios-remotexpc's client hashes A and B without leading
// zero bytes in M1 (crypto-utils.ts calculateM1). With an A that starts with a zero byte the two
// forms differ; the device accepts both, answers M2 over A as the host hashed it, and still
// rejects a wrong password in either form.
func TestSRPDeviceAcceptsUnpaddedM1(t *testing.T) {
	salt := unhex(t, srpVecSalt)
	var c *SRPClient
	for i := int64(1); ; i++ {
		sec := big.NewInt(i).FillBytes(make([]byte, srpSecretLen))
		c, _ = NewSRPClient(SRPUsername, "314159", bytes.NewReader(sec))
		if c.A[0] == 0 {
			break
		}
	}
	minA := new(big.Int).SetBytes(c.A).Bytes()
	for _, pin := range []string{"314159", "271828"} {
		s, _ := NewSRPServer(SRPUsername, salt, SRPVerifier(salt, SRPUsername, pin), nil)
		if _, err := c.Challenge(salt, s.B); err != nil {
			t.Fatal(err)
		}
		minB := new(big.Int).SetBytes(s.B).Bytes()
		m1 := srpM1(SRPUsername, salt, minA, minB, c.Key()) // appium's M1
		if bytes.Equal(m1, c.m1) {
			t.Fatal("padded and unpadded M1 agree: the test proves nothing")
		}
		m2, err := s.Verify(c.A, m1)
		if pin != "314159" {
			if err == nil {
				t.Fatal("unpadded M1 with a wrong password accepted")
			}
			continue
		}
		if err != nil {
			t.Fatalf("unpadded M1: %v", err)
		}
		if want := srpHash(minA, m1, c.Key()); !bytes.Equal(m2, want) {
			t.Error("M2 is not over A as the host hashed it")
		}
	}
}
