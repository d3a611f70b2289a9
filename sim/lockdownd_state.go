package sim

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"sync"
	"time"

	"github.com/iosmux/iosmux/lockdown"
)

// TrustMode is how the simulated device answers lockdown Pair: what the user does with the
// "Trust This Computer?" dialog.
type TrustMode int

const (
	// TrustAccept accepts every valid Pair at once (the user taps Trust before the host
	// asks again). The default.
	TrustAccept TrustMode = iota
	// TrustAfterPrompt answers a host's first Pair with PairingDialogResponsePending (the
	// dialog is showing) and accepts the next one, as a real device does when the user taps
	// Trust between two attempts.
	TrustAfterPrompt
	// TrustDeny answers UserDeniedPairing ("Don't Trust").
	TrustDeny
	// TrustNever answers PairingDialogResponsePending forever (nobody answers the dialog).
	TrustNever
	// TrustLocked answers PasswordProtected (locked with a passcode; no dialog is shown).
	TrustLocked
)

func (t TrustMode) String() string {
	switch t {
	case TrustAccept:
		return "accept"
	case TrustAfterPrompt:
		return "after-prompt"
	case TrustDeny:
		return "deny"
	case TrustNever:
		return "never"
	case TrustLocked:
		return "locked"
	}
	return fmt.Sprintf("TrustMode(%d)", int(t))
}

// Service port allocation for StartService: dynamic ports, single use, expiring if unused.
const (
	servicePortFirst = 49152
	servicePortLast  = 65535
	// serviceTTL is how long a started service waits for its connection.
	// UNCONFIRMED: how long a real lockdownd keeps an unused service port open.
	serviceTTL = 60 * time.Second
	// maxStartedServices bounds the ports waiting for a connection per device.
	maxStartedServices = 256
)

// pairedHost is a host the device trusts (what lockdown Pair stored).
type pairedHost struct {
	hostID     string
	systemBUID string
	hostCert   []byte // DER of HostCertificate: the host's TLS client certificate
	rootCert   []byte // DER of RootCertificate: libimobiledevice 1.3.0 presents this one (measured)
	escrowBag  []byte
}

// owns reports whether a TLS client certificate is this host's: its HostCertificate (go-ios,
// pymobiledevice3, iosmux) or its RootCertificate (what libimobiledevice 1.3.0 presents; measured
// against idevicepair/ideviceinfo, so a real device must accept it too).
func (h *pairedHost) owns(der []byte) bool {
	return string(der) == string(h.hostCert) || string(der) == string(h.rootCert)
}

// startedService is a service port StartService handed out.
type startedService struct {
	name    string
	svc     lockdownService
	expires time.Time
}

// lockdownState is a device's lockdownd state that outlives connections: trust policy,
// paired hosts, started service ports and the device's TLS certificate.
type lockdownState struct {
	mu       sync.Mutex
	trust    TrustMode
	prompted map[string]bool // HostIDs that were shown the dialog (TrustAfterPrompt)
	hosts    map[string]*pairedHost
	ports    map[uint16]startedService
	nextPort uint16

	certOnce sync.Once
	cert     tls.Certificate
	certErr  error
}

// newLockdownState is a fresh lockdownd state with a random first service port.
func newLockdownState() *lockdownState {
	st := &lockdownState{
		prompted: map[string]bool{},
		hosts:    map[string]*pairedHost{},
		ports:    map[uint16]startedService{},
	}
	var b [2]byte
	_, _ = rand.Read(b[:])
	st.nextPort = servicePortFirst + uint16(int(b[0])<<8|int(b[1]))%(servicePortLast-servicePortFirst)
	return st
}

// lockdownd is the device's lockdownd state.
func (d *Device) lockdownd() *lockdownState { return d.lockdown }

// SetTrust selects how the device answers lockdown Pair from now on.
func (d *Device) SetTrust(m TrustMode) {
	st := d.lockdownd()
	st.mu.Lock()
	st.trust = m
	st.prompted = map[string]bool{}
	st.mu.Unlock()
}

// TrustMode is the device's current Pair policy.
func (d *Device) TrustMode() TrustMode {
	st := d.lockdownd()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.trust
}

// PairedHostIDs lists the HostIDs the device trusts, sorted.
func (d *Device) PairedHostIDs() []string {
	st := d.lockdownd()
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]string, 0, len(st.hosts))
	for id := range st.hosts {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Unpair forgets a host, as "Reset Location & Privacy" does; it reports whether it was known.
func (d *Device) Unpair(hostID string) bool {
	st := d.lockdownd()
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.hosts[hostID]
	delete(st.hosts, hostID)
	delete(st.prompted, hostID)
	return ok
}

// ForgetHosts forgets every paired host, lockdown and RemotePairing, as erasing the phone or
// "Reset Location & Privacy" does; it returns how many there were. The next session of any host
// fails with InvalidHostID, and its next pair-verify fails.
func (d *Device) ForgetHosts() int {
	rp := d.remotePairingState()
	rp.mu.Lock()
	n := len(rp.hosts)
	clear(rp.hosts)
	rp.mu.Unlock()
	return n + d.forgetLockdownHosts()
}

// forgetLockdownHosts forgets lockdown's paired hosts and returns how many there were.
func (d *Device) forgetLockdownHosts() int {
	st := d.lockdownd()
	st.mu.Lock()
	defer st.mu.Unlock()
	n := len(st.hosts)
	st.hosts = map[string]*pairedHost{}
	st.prompted = map[string]bool{}
	return n
}

func (st *lockdownState) host(hostID string) (*pairedHost, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	h, ok := st.hosts[hostID]
	return h, ok
}

// knownHostCert reports whether der is a certificate of a paired host.
func (st *lockdownState) knownHostCert(der []byte) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, h := range st.hosts {
		if h.owns(der) {
			return true
		}
	}
	return false
}

var errServiceLimit = errors.New("too many started services waiting for a connection")

// startService hands out a fresh device port for one connection to the service.
func (st *lockdownState) startService(name string, svc lockdownService) (uint16, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	for p, s := range st.ports {
		if now.After(s.expires) {
			delete(st.ports, p)
		}
	}
	if len(st.ports) >= maxStartedServices {
		return 0, errServiceLimit
	}
	for {
		p := st.nextPort
		st.nextPort++
		if st.nextPort < servicePortFirst || st.nextPort > servicePortLast || st.nextPort == 0 {
			st.nextPort = servicePortFirst
		}
		if _, used := st.ports[p]; used || p == lockdown.LockdownPort {
			continue
		}
		st.ports[p] = startedService{name: name, svc: svc, expires: now.Add(serviceTTL)}
		return p, nil
	}
}

// takeService claims a started service's port for the connection arriving on it.
func (st *lockdownState) takeService(port uint16) (startedService, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.ports[port]
	if !ok {
		return startedService{}, false
	}
	delete(st.ports, port)
	if time.Now().After(s.expires) {
		return startedService{}, false
	}
	return s, true
}

// tlsCertificate is the device's TLS certificate: self-signed with the device key (clients
// do not verify it, lockdown.md §4.1).
func (d *Device) tlsCertificate() (tls.Certificate, error) {
	st := d.lockdownd()
	st.certOnce.Do(func() {
		key := d.PrivateKey()
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "iosmux simulated device " + d.UDID},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			SignatureAlgorithm:    x509.SHA256WithRSA,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			st.certErr = fmt.Errorf("sim: device certificate: %w", err)
			return
		}
		st.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return st.cert, st.certErr
}

// serverTLSConfig is the device side of lockdown TLS: the device certificate, a required
// client certificate that accept must approve (the paired host's HostCertificate).
func (d *Device) serverTLSConfig(accept func(leaf []byte) error) (*tls.Config, error) {
	cert, err := d.tlsCertificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("sim: no client certificate")
			}
			return accept(raw[0])
		},
		// No TLS 1.3 session tickets after the handshake: the stream stays exactly the
		// records the peer expects (StopSession and handshake-only services leave TLS).
		SessionTicketsDisabled: true,
		MinVersion:             tls.VersionTLS12,
	}, nil
}
