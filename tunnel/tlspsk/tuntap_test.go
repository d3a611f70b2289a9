package tlspsk_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/tunnel"
	"github.com/iosmux/iosmux/tunnel/tlspsk"
)

// serveTunnel accepts one connection: TLS-PSK server, then the device side of CDTunnel.
func serveTunnel(t *testing.T, psk []byte) (int, <-chan error, <-chan *tunnel.Params) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errc := make(chan error, 1)
	params := make(chan *tunnel.Params, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := tlspsk.Server(nc, tlspsk.Config{PSK: psk})
		if err := c.HandshakeContext(ctx); err != nil {
			errc <- err
			return
		}
		p, err := tunnel.ServerHandshake(ctx, c, func(mtu int) (*tunnel.Params, error) {
			return tunnel.RandomParams(min(mtu, 1500), 58783), nil
		})
		params <- p
		errc <- err
		c.Close()
	}()
	return ln.Addr().(*net.TCPAddr).Port, errc, params
}

// TestTuntapPSKHandshake: appium-ios-tuntap's native TLS-PSK client (OpenSSL 3, offers
// PSK-AES256-CBC-SHA first) completes TLS and the CDTunnel handshake against our server.
func TestTuntapPSKHandshake(t *testing.T) {
	psk := make([]byte, 32)
	rand.Read(psk)
	port, errc, params := serveTunnel(t, psk)
	out, err := peertest.Node(t, 60*time.Second, nil, "tuntap-handshake-psk.mjs",
		"127.0.0.1", strconv.Itoa(port), hex.EncodeToString(psk), "1400")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server: %v", err)
	}
	p := <-params
	var got struct {
		ClientParameters struct {
			Address string `json:"address"`
			MTU     int    `json:"mtu"`
		} `json:"clientParameters"`
		ServerAddress string `json:"serverAddress"`
		ServerRSDPort int    `json:"serverRSDPort"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("tuntap output %q: %v", out, err)
	}
	if got.ClientParameters.Address != p.ClientAddress.String() || got.ClientParameters.MTU != 1400 ||
		got.ServerAddress != p.ServerAddress.String() || got.ServerRSDPort != 58783 {
		t.Fatalf("appium-ios-tuntap read %+v; server granted %+v", got, p)
	}
}

func TestTuntapPSKWrongKey(t *testing.T) {
	psk := make([]byte, 32)
	rand.Read(psk)
	port, errc, _ := serveTunnel(t, psk)
	other := make([]byte, 32)
	rand.Read(other)
	_, err := peertest.Node(t, 60*time.Second, nil, "tuntap-handshake-psk.mjs",
		"127.0.0.1", strconv.Itoa(port), hex.EncodeToString(other), "1400")
	if err == nil {
		t.Fatal("appium-ios-tuntap succeeded with the wrong PSK")
	}
	if serr := <-errc; serr == nil || !strings.Contains(serr.Error(), "wrong PSK") {
		t.Fatalf("server: %v", serr)
	}
	t.Logf("client error: %v", err)
}
