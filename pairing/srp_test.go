package pairing

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
)

func checkHex(t *testing.T, name string, got []byte, want string) {
	t.Helper()
	if g := hex.EncodeToString(got); g != want {
		t.Errorf("%s:\n got %s\nwant %s", name, g, want)
	}
}

func TestSRPVectors(t *testing.T) {
	for _, vec := range []srpVector{srpHAPVector, srpPairSetupVector} {
		t.Run(vec.I, func(t *testing.T) {
			salt := unhex(t, srpVecSalt)
			checkHex(t, "k", srpK.Bytes(), vec.k)
			checkHex(t, "x", srpX(salt, vec.I, vec.P).Bytes(), vec.x)
			v := SRPVerifier(salt, vec.I, vec.P)
			checkHex(t, "v", v, vec.v)

			c, err := NewSRPClient(vec.I, vec.P, bytes.NewReader(unhex(t, srpVecA)))
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "A", c.A, vec.A)
			s, err := NewSRPServer(vec.I, salt, v, bytes.NewReader(unhex(t, srpVecB)))
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "B", s.B, vec.B)
			checkHex(t, "u", srpHash(c.A, s.B), vec.u)

			m1, err := c.Challenge(salt, s.B)
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "K(client)", c.Key(), vec.K)
			checkHex(t, "M1", m1, vec.M1)
			m2, err := s.Verify(c.A, m1)
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "K(server)", s.Key(), vec.K)
			checkHex(t, "M2", m2, vec.M2)
			if err := c.Verify(m2); err != nil {
				t.Fatal(err)
			}
			// K = H(PAD(S)) with the spec's S.
			k := sha512.Sum512(unhex(t, vec.S))
			checkHex(t, "H(S)", k[:], vec.K)
		})
	}
}

// TestSRPEdgeVectors pins test-vectors.md §1.4 (P=123-45-678, salt with and without a leading zero).
func TestSRPEdgeVectors(t *testing.T) {
	cases := []struct{ salt, x, K, M1, M2 string }{
		{"00b25379d1a8581eb5a727673a2441ee", "5f71b784ad9d6a6f", "dbce5774183a5d8a", "7bfac666037a0b38", "3b8b949d7943c47e"},
		{srpVecSalt, "", "8d81d9699f88f807", "5405c5ad299a761d", "65623be9ae14a44a"},
	}
	for _, tc := range cases {
		salt := unhex(t, tc.salt)
		if tc.x != "" {
			checkHex(t, "x prefix", srpX(salt, SRPUsername, "123-45-678").Bytes()[:8], tc.x)
		}
		c, _ := NewSRPClient(SRPUsername, "123-45-678", bytes.NewReader(unhex(t, srpVecA)))
		s, _ := NewSRPServer(SRPUsername, salt, SRPVerifier(salt, SRPUsername, "123-45-678"), bytes.NewReader(unhex(t, srpVecB)))
		m1, err := c.Challenge(salt, s.B)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := s.Verify(c.A, m1)
		if err != nil {
			t.Fatal(err)
		}
		checkHex(t, "K prefix", c.Key()[:8], tc.K)
		checkHex(t, "M1 prefix", m1[:8], tc.M1)
		checkHex(t, "M2 prefix", m2[:8], tc.M2)
	}
}

func TestSRPWrongPassword(t *testing.T) {
	salt := unhex(t, srpVecSalt)
	c, _ := NewSRPClient(SRPUsername, "111111", nil)
	s, _ := NewSRPServer(SRPUsername, salt, SRPVerifier(salt, SRPUsername, DefaultSetupPIN), nil)
	m1, err := c.Challenge(salt, s.B)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(c.A, m1); !errors.Is(err, ErrSRP) {
		t.Fatalf("wrong PIN accepted: %v", err)
	}
	if s.Key() != nil {
		t.Fatal("server kept a key after a failed proof")
	}
	if err := c.Verify(make([]byte, 64)); !errors.Is(err, ErrSRP) {
		t.Fatalf("bad M2 accepted: %v", err)
	}
}

func TestSRPRejectsBadPublics(t *testing.T) {
	salt := unhex(t, srpVecSalt)
	c, _ := NewSRPClient(SRPUsername, DefaultSetupPIN, nil)
	for name, b := range map[string][]byte{
		"empty": nil, "zero": make([]byte, srpLen), "N": srpPad(srpN), "2N-ish too long": make([]byte, srpLen+1),
	} {
		if _, err := c.Challenge(salt, b); !errors.Is(err, ErrSRP) {
			t.Errorf("B %s accepted: %v", name, err)
		}
	}
	s, _ := NewSRPServer(SRPUsername, salt, SRPVerifier(salt, SRPUsername, DefaultSetupPIN), nil)
	if _, err := s.Verify(srpPad(srpN), make([]byte, 64)); !errors.Is(err, ErrSRP) {
		t.Errorf("A = N accepted: %v", err)
	}
}

// TestSRPLeadingZeroPadded constructs a client secret whose A has a leading zero byte and checks
// that both sides agree (A padded to 384 bytes in u, M1, M2) and that B given unpadded is accepted.
func TestSRPLeadingZeroPadded(t *testing.T) {
	salt := unhex(t, srpVecSalt)
	var c *SRPClient
	for i := int64(1); ; i++ {
		sec := big.NewInt(i).FillBytes(make([]byte, srpSecretLen))
		c, _ = NewSRPClient(SRPUsername, DefaultSetupPIN, bytes.NewReader(sec))
		if c.A[0] == 0 {
			break
		}
	}
	if len(c.A) != srpLen {
		t.Fatalf("A is %d bytes", len(c.A))
	}
	s, _ := NewSRPServer(SRPUsername, salt, SRPVerifier(salt, SRPUsername, DefaultSetupPIN), nil)
	// Short (minimal) B from a peer is left-padded.
	b := new(big.Int).SetBytes(s.B).Bytes()
	m1, err := c.Challenge(salt, b)
	if err != nil {
		t.Fatal(err)
	}
	// Minimal A from a peer is accepted and padded too.
	m2, err := s.Verify(new(big.Int).SetBytes(c.A).Bytes(), m1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(m2); err != nil {
		t.Fatal(err)
	}
	// The padded convention differs from the minimal one for this A.
	min := srpM1(SRPUsername, salt, c.A[1:], s.B, c.Key())
	if bytes.Equal(min, m1) {
		t.Fatal("M1 does not depend on padding A")
	}
}
