package pairing

import (
	"crypto/ed25519"
	"testing"
)

// BenchmarkPairVerify is one full pair-verify (V-M1…V-M4), both roles in-process.
func BenchmarkPairVerify(b *testing.B) {
	host := randomIdentity(b, "HOST")
	dev := randomIdentity(b, "DEV")
	lookup := func(string) (ed25519.PublicKey, bool) { return host.public(), true }
	for b.Loop() {
		h, _ := NewVerifyHost(host, nil)
		d, _ := NewVerifyDevice(dev, lookup, nil)
		m2, _ := d.HandleM1(h.M1())
		m3, err := h.HandleM2(m2)
		if err != nil {
			b.Fatal(err)
		}
		m4, _ := d.HandleM3(m3)
		if err := h.HandleM4(m4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPairSetup is one full pair-setup (M1…M6, two 3072-bit SRP sides) in-process.
func BenchmarkPairSetup(b *testing.B) {
	host := randomIdentity(b, "HOST")
	dev := randomIdentity(b, "DEV")
	for b.Loop() {
		h, _ := NewSetupHost(host, DefaultSetupPIN, nil)
		d, _ := NewSetupDevice(dev, DefaultSetupPIN, nil)
		m2, _ := d.HandleM1(h.M1())
		m3, _ := h.HandleM2(m2)
		m4, _ := d.HandleM3(m3)
		m5, _ := h.HandleM4(m4)
		m6, _, _ := d.HandleM5(m5)
		if _, err := h.HandleM6(m6); err != nil {
			b.Fatal(err)
		}
	}
}
