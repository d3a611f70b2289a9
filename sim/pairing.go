package sim

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"fmt"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
)

// escrowBagSize is the size of the simulated EscrowBag (an opaque keybag on a real device).
const escrowBagSize = 64

// pair answers lockdown Pair (lockdown.md §4): the record must be well formed and its
// DeviceCertificate must carry this device's public key; then the TrustMode decides.
func (lc *lockdownConn) pair(req, reply map[string]any) {
	host, err := lc.d.checkPairRecord(req)
	if err != nil {
		lc.d.Log.Debug("lockdown: Pair: rejected record", "err", err)
		reply["Error"] = lockdown.CodeInvalidPairRecord
		return
	}
	st := lc.st
	st.mu.Lock()
	defer st.mu.Unlock()
	switch st.trust {
	case TrustLocked:
		reply["Error"] = lockdown.CodePasswordProtected
		return
	case TrustDeny:
		reply["Error"] = lockdown.CodeUserDeniedPairing
		return
	case TrustNever:
		reply["Error"] = lockdown.CodePairingDialogResponsePending
		return
	case TrustAfterPrompt:
		if !st.prompted[host.hostID] {
			st.prompted[host.hostID] = true
			reply["Error"] = lockdown.CodePairingDialogResponsePending
			return
		}
	}
	host.escrowBag = make([]byte, escrowBagSize)
	_, _ = rand.Read(host.escrowBag)
	st.hosts[host.hostID] = host
	delete(st.prompted, host.hostID)
	reply["EscrowBag"] = host.escrowBag
	lc.d.Log.Info("lockdown: paired", "host_id", host.hostID)
}

// checkPairRecord validates the PairRecord of a Pair request.
func (d *Device) checkPairRecord(req map[string]any) (*pairedHost, error) {
	pr, ok := req["PairRecord"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no PairRecord dictionary")
	}
	str := func(k string) string { s, _ := pr[k].(string); return s }
	data := func(k string) []byte {
		switch v := pr[k].(type) {
		case []byte:
			return v
		case string:
			return []byte(v)
		}
		return nil
	}
	hostID := str(pairrecord.KeyHostID)
	if hostID == "" {
		return nil, fmt.Errorf("no HostID")
	}
	hostCert, err := pairrecord.ParseCertificate(data(pairrecord.KeyHostCertificate))
	if err != nil {
		return nil, fmt.Errorf("HostCertificate: %w", err)
	}
	rootCert, err := pairrecord.ParseCertificate(data(pairrecord.KeyRootCertificate))
	if err != nil {
		return nil, fmt.Errorf("RootCertificate: %w", err)
	}
	devCert, err := pairrecord.ParseCertificate(data(pairrecord.KeyDeviceCertificate))
	if err != nil {
		return nil, fmt.Errorf("DeviceCertificate: %w", err)
	}
	pub, ok := devCert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&d.PrivateKey().PublicKey) {
		return nil, fmt.Errorf("DeviceCertificate does not carry this device's public key")
	}
	for _, c := range []*x509.Certificate{hostCert, devCert} {
		if err := signedBy(c, rootCert); err != nil {
			return nil, fmt.Errorf("certificate not signed by RootCertificate: %w", err)
		}
	}
	return &pairedHost{hostID: hostID, systemBUID: str(pairrecord.KeySystemBUID), hostCert: hostCert.Raw, rootCert: rootCert.Raw}, nil
}

// signedBy checks c's signature with parent's key. SHA-1 RSA signatures (libimobiledevice's
// certificates) are checked by hand: crypto/x509 refuses them.
func signedBy(c, parent *x509.Certificate) error {
	err := c.CheckSignatureFrom(parent)
	if err == nil || c.SignatureAlgorithm != x509.SHA1WithRSA {
		return err
	}
	pub, ok := parent.PublicKey.(*rsa.PublicKey)
	if !ok {
		return err
	}
	sum := sha1.Sum(c.RawTBSCertificate)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], c.Signature)
}

// hostIDOf reads PairRecord.HostID of a ValidatePair or Unpair request.
func hostIDOf(req map[string]any) string {
	pr, _ := req["PairRecord"].(map[string]any)
	id, _ := pr[pairrecord.KeyHostID].(string)
	return id
}

// validatePair answers the pre-iOS 7 ValidatePair: success for a paired HostID.
func (lc *lockdownConn) validatePair(req, reply map[string]any) {
	id := hostIDOf(req)
	if id == "" {
		reply["Error"] = lockdown.CodeMissingHostID
		return
	}
	if _, ok := lc.st.host(id); !ok {
		reply["Error"] = lockdown.CodeInvalidHostID
	}
}

// unpair forgets the host named in PairRecord.HostID.
func (lc *lockdownConn) unpair(req, reply map[string]any) {
	id := hostIDOf(req)
	if id == "" {
		reply["Error"] = lockdown.CodeMissingHostID
		return
	}
	if !lc.d.Unpair(id) {
		reply["Error"] = lockdown.CodeInvalidHostID
	}
}
