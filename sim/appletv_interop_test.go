package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/sim/profile"
)

// appleTVPIN is the PIN the simulated device "shows" in these tests.
const appleTVPIN = "314159"

// appleTVResult is appletv-pair.mjs's output.
type appleTVResult struct {
	DeviceID       string `json:"deviceId"`
	PairingFile    string `json:"pairingFile"`
	FileMode       string `json:"fileMode"`
	HostIdentifier string `json:"hostIdentifier"`
	Record         struct {
		PublicKey           string  `json:"publicKey"`
		PrivateKey          string  `json:"privateKey"`
		RemotePairingUdid   *string `json:"remotePairingUdid"`
		RemoteUnlockHostKey string  `json:"remoteUnlockHostKey"`
	} `json:"record"`
	Tunnel *struct {
		DeviceIdentifier string `json:"deviceIdentifier"`
		PSKLength        int    `json:"pskLength"`
		ClientParameters struct {
			Address string `json:"address"`
			MTU     int    `json:"mtu"`
		} `json:"clientParameters"`
		ServerAddress string `json:"serverAddress"`
		ServerRSDPort int    `json:"serverRSDPort"`
	} `json:"tunnel"`
}

// appleTV is a simulated device in PIN mode serving its RPPairing port on loopback, with its log.
func appleTV(t *testing.T, seed string) (*Device, string, *peertest.LogBuffer) {
	t.Helper()
	var logs peertest.LogBuffer
	d := NewDevice(profile.Default(), seed, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := d.SetRemotePairingPIN(appleTVPIN); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.ServeRemotePairing(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeRemotePairing: %v", err)
		}
	})
	return d, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), &logs
}

// TestAppleTVPairInterop drives appium-ios-remotexpc's Apple TV client against the simulator's
// RPPairing port in PIN mode, with an explicit device record (no mDNS): AppleTVPairingService
// pairs with the PIN and stores a record; the record is checked against the device and used for
// an independent pair-verify; AppleTVTunnelService then verifies with it, gets a TCP listener,
// and appium-ios-tuntap completes TLS-PSK and the CDTunnel handshake.
func TestAppleTVPairInterop(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg) // appium's strongbox keeps its records under it
	d, port, logs := appleTV(t, "appletv")
	started := make(chan *TunnelSession, 1)
	d.SetTunnelOptions(TunnelOptions{OnStart: func(s *TunnelSession) { started <- s }})

	out, err := peertest.Node(t, 120*time.Second, nil, "appletv-pair.mjs",
		"127.0.0.1", port, appleTVPIN, "1280", "--timeout=90")
	if err != nil {
		t.Fatalf("%v\nsimulator log:\n%s", err, logs.String())
	}
	var got appleTVResult
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("appletv-pair output %q: %v", out, err)
	}

	// The record: named after the UDID from M6, in appium's strongbox under XDG_DATA_HOME.
	if got.DeviceID != strings.ToUpper(d.UDID) {
		t.Errorf("record device id %q, want %q (M6 remotepairing_udid)", got.DeviceID, d.UDID)
	}
	if got.Record.RemotePairingUdid == nil || *got.Record.RemotePairingUdid != strings.ToUpper(d.UDID) {
		t.Errorf("record remote_pairing_udid %v, want %s", got.Record.RemotePairingUdid, d.UDID)
	}
	if rel, err := filepath.Rel(xdg, got.PairingFile); err != nil || strings.HasPrefix(rel, "..") {
		t.Errorf("record %s is not under XDG_DATA_HOME %s", got.PairingFile, xdg)
	}
	if _, err := os.Stat(got.PairingFile); err != nil {
		t.Errorf("record file: %v", err)
	}
	// appium writes the record with fs.writeFile's default mode (0644 under umask 022); noted
	// rather than asserted: it is appium's choice, not ours.
	t.Logf("appium's record %s has mode %s", got.PairingFile, got.FileMode)

	pub, err1 := hex.DecodeString(got.Record.PublicKey)
	seed, err2 := hex.DecodeString(got.Record.PrivateKey)
	if err := errors.Join(err1, err2); err != nil || len(pub) != ed25519.PublicKeySize || len(seed) != ed25519.SeedSize {
		t.Fatalf("record keys: %d/%d bytes, %v", len(pub), len(seed), err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	if !bytes.Equal(key.Public().(ed25519.PublicKey), pub) {
		t.Fatal("the record's private key does not give its public key")
	}
	// The device stored the host under the identifier appium derives from its hostname, with the
	// record's public key.
	st := d.remotePairingState()
	st.mu.Lock()
	stored, ok := st.hosts[got.HostIdentifier]
	st.mu.Unlock()
	if !ok {
		t.Fatalf("device stored hosts %v, not appium's %s", d.RemotePairingHosts(), got.HostIdentifier)
	}
	if !bytes.Equal(stored, pub) {
		t.Fatal("the device stored another LTPK than the record's")
	}

	// The tunnel appium brought up, seen from both sides.
	if got.Tunnel == nil {
		t.Fatal("no tunnel in the output")
	}
	var s *TunnelSession
	select {
	case s = <-started:
	case <-time.After(tunFailAfter):
		t.Fatalf("the simulator saw no tunnel start\n%s", logs.String())
	}
	tn := got.Tunnel
	if tn.DeviceIdentifier != strings.ToUpper(d.UDID) || tn.PSKLength != 32 {
		t.Errorf("tunnel device %q psk %d bytes, want %s and 32", tn.DeviceIdentifier, tn.PSKLength, d.UDID)
	}
	ca, err1 := netip.ParseAddr(tn.ClientParameters.Address)
	sa, err2 := netip.ParseAddr(tn.ServerAddress)
	if err := errors.Join(err1, err2); err != nil || ca != s.Params.ClientAddress || sa != s.Params.ServerAddress {
		t.Errorf("appium got client %s server %s, device granted %s / %s (%v)", tn.ClientParameters.Address,
			tn.ServerAddress, s.Params.ClientAddress, s.Params.ServerAddress, err)
	}
	if tn.ClientParameters.MTU != 1280 || tn.ServerRSDPort != int(s.Params.ServerRSDPort) || tn.ServerRSDPort == 0 {
		t.Errorf("appium got mtu %d rsd %d; device granted mtu %d rsd %d", tn.ClientParameters.MTU,
			tn.ServerRSDPort, s.Params.MTU, s.Params.ServerRSDPort)
	}

	// The record verifies against the device with iosmux's own host, and only with its key.
	ctx, cancel := context.WithTimeout(context.Background(), 2*tunFailAfter)
	defer cancel()
	verify := func(k ed25519.PrivateKey) error {
		nc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		h := pairing.NewHost(pairing.NewFramedTransport(nc), pairing.HostConfig{
			Identity: pairing.Identity{Identifier: got.HostIdentifier, Key: k}, Name: "iosmux-test"})
		if _, err := h.Handshake(ctx); err != nil {
			t.Fatal(err)
		}
		_, err = h.Verify(ctx)
		return err
	}
	if err := verify(key); err != nil {
		t.Fatalf("pair-verify with appium's record: %v\n%s", err, logs.String())
	}
	_, other, _ := ed25519.GenerateKey(nil)
	var pe *pairing.PeerError
	if err := verify(other); !errors.As(err, &pe) {
		t.Fatalf("pair-verify with another key under appium's identifier: %v, want a refusal", err)
	}
}

// TestAppleTVPairRefused: a wrong PIN, and the PIN screen cancelled on the device, each fail
// appium's pairing with a clear error, are logged by the device, and leave no record anywhere.
func TestAppleTVPairRefused(t *testing.T) {
	for _, c := range []struct {
		name, pin string
		trust     TrustMode
		appium    string // in appium's error
		device    string // in the device's log
	}{
		{"wrong-pin", "271828", TrustAccept, "WRONG_PIN", "pair-setup refused"},
		{"cancelled", appleTVPIN, TrustDeny, "NO_PAIRING_DATA", "Trust denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			xdg := t.TempDir()
			t.Setenv("XDG_DATA_HOME", xdg)
			d, port, logs := appleTV(t, "appletv-"+c.name)
			d.SetTrust(c.trust)
			_, err := peertest.Node(t, 120*time.Second, nil, "appletv-pair.mjs",
				"127.0.0.1", port, c.pin, "1280", "--no-tunnel=1", "--timeout=90")
			if err == nil {
				t.Fatal("appium paired")
			}
			if !strings.Contains(err.Error(), "pairing failed: "+c.appium) {
				t.Errorf("appium's error does not say %s:\n%v", c.appium, err)
			}
			// The device logs the refusal (before or as the connection ends).
			deadline := time.Now().Add(tunFailAfter)
			for !strings.Contains(logs.String(), c.device) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !strings.Contains(logs.String(), c.device) {
				t.Errorf("device log lacks %q:\n%s", c.device, logs.String())
			}
			if strings.Contains(logs.String(), c.pin) {
				t.Error("the device logged the PIN")
			}
			if h := d.RemotePairingHosts(); len(h) != 0 {
				t.Errorf("device stored hosts %v", h)
			}
			_ = filepath.WalkDir(xdg, func(p string, e os.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					t.Errorf("appium left %s", p)
				}
				return nil
			})
		})
	}
}
