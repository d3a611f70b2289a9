package tlspsk

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSServer runs openssl s_server -rev (echoes lines reversed) and waits until it accepts.
func startSServer(t *testing.T, openssl, pskHex, suite string) (string, *peertest.LogBuffer) {
	t.Helper()
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out := &peertest.LogBuffer{}
	cmd := exec.CommandContext(ctx, openssl, "s_server", "-accept", fmt.Sprintf("127.0.0.1:%d", port),
		"-psk", pskHex, "-psk_identity", "iosmux", "-nocert", "-tls1_2", "-cipher", suite, "-rev")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if strings.Contains(out.String(), "ACCEPT") {
			return addr, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("s_server did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialClient(t *testing.T, addr string, key []byte, suite uint16) *Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := Client(raw, Config{PSK: key, Identity: "iosmux", Suites: []uint16{suite}})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestOpenSSLServer: our client against openssl s_server for every suite, data both ways.
func TestOpenSSLServer(t *testing.T) {
	openssl := peertest.Tool(t, "openssl")
	for _, id := range DefaultSuites {
		t.Run(SuiteName(id), func(t *testing.T) {
			key := psk32(t)
			addr, out := startSServer(t, openssl, hex.EncodeToString(key), SuiteName(id))
			c := dialClient(t, addr, key, id)
			if err := c.Handshake(); err != nil {
				t.Fatalf("%v\ns_server:\n%s", err, out.String())
			}
			if _, err := c.Write([]byte("hello iosmux\n")); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "xumsoi olleh\n" {
				t.Fatalf("reply %q %v\ns_server:\n%s", line, err, out.String())
			}
			c.Close()
			waitFor(t, out, strings.ToLower("Ciphersuite: "+SuiteName(id)))
		})
	}
}

// TestOpenSSLServerWrongPSK: both sides report the failure.
func TestOpenSSLServerWrongPSK(t *testing.T) {
	openssl := peertest.Tool(t, "openssl")
	for _, id := range []uint16{PSKWithAES256CBCSHA, PSKWithAES256GCMSHA384} {
		addr, out := startSServer(t, openssl, hex.EncodeToString(psk32(t)), SuiteName(id))
		err := dialClient(t, addr, psk32(t), id).Handshake()
		if err == nil || !strings.Contains(err.Error(), "wrong PSK") {
			t.Fatalf("%s: client error %v", SuiteName(id), err)
		}
		waitFor(t, out, "bad record mac", "decrypt")
	}
}

func waitFor(t *testing.T, out *peertest.LogBuffer, any ...string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s := strings.ToLower(out.String())
		for _, w := range any {
			if strings.Contains(s, w) {
				return
			}
		}
	}
	t.Fatalf("openssl did not report any of %q:\n%s", any, out.String())
}

// serveOnce accepts one connection, answers one line with "pong:<line>" and closes.
func serveOnce(t *testing.T, key []byte) (string, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer ln.Close()
		raw, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
		s := Server(raw, Config{PSK: key})
		defer s.Close()
		line, err := bufio.NewReader(s).ReadString('\n')
		if err != nil {
			done <- err
			return
		}
		_, err = io.WriteString(s, "pong:"+line)
		done <- err
	}()
	return ln.Addr().String(), done
}

func runSClient(t *testing.T, openssl, addr, pskHex, suite string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-psk", pskHex,
		"-psk_identity", "iosmux", "-tls1_2", "-cipher", suite, "-quiet", "-ign_eof")
	cmd.Stdin = strings.NewReader("ping\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenSSLClient: openssl s_client against our server for every suite, data both ways.
func TestOpenSSLClient(t *testing.T) {
	openssl := peertest.Tool(t, "openssl")
	for _, id := range DefaultSuites {
		t.Run(SuiteName(id), func(t *testing.T) {
			key := psk32(t)
			addr, done := serveOnce(t, key)
			out, err := runSClient(t, openssl, addr, hex.EncodeToString(key), SuiteName(id))
			if serr := <-done; serr != nil {
				t.Fatalf("server: %v\ns_client (%v):\n%s", serr, err, out)
			}
			if !strings.Contains(out, "pong:ping") {
				t.Fatalf("s_client got no reply (%v):\n%s", err, out)
			}
		})
	}
}

func TestOpenSSLClientWrongPSK(t *testing.T) {
	openssl := peertest.Tool(t, "openssl")
	for _, id := range []uint16{PSKWithAES128CBCSHA, PSKWithAES128GCMSHA256} {
		addr, done := serveOnce(t, psk32(t))
		out, err := runSClient(t, openssl, addr, hex.EncodeToString(psk32(t)), SuiteName(id))
		serr := <-done
		if serr == nil || !strings.Contains(serr.Error(), "wrong PSK") {
			t.Fatalf("%s: server error %v", SuiteName(id), serr)
		}
		if err == nil || !strings.Contains(strings.ToLower(out), "bad record mac") {
			t.Fatalf("%s: s_client did not fail with bad record mac (%v):\n%s", SuiteName(id), err, out)
		}
	}
}
