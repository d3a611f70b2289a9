package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// freeLoopbackAddr picks a loopback port that is free now (for flags that take an address).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEcosystemAPIs runs the daemon against two virtual phones with --udid naming one of them
// and --goios-api on: only that phone is served; go-ios's agent routes and appium's registry
// (through appium-ios-remotexpc's own client) list the tunnel GET / lists, and a client reaches
// RSD and a service at what they advertise.
func TestEcosystemAPIs(t *testing.T) {
	goiosAddr := freeLoopbackAddr(t)
	// The env's phones are seeded "e2e-0", "e2e-1": the first one's UDID is known in advance.
	first := sim.NewDevice(profile.Default(), "e2e-0", nil).UDID
	e := startEnvWith(t, 2, envOptions{flags: []string{"--udid", first, "--goios-api", goiosAddr}})
	served, skipped := e.devs[0], e.devs[1]
	e.waitPublished(served.UDID)
	if _, ok := e.device(skipped.UDID); ok {
		t.Fatalf("--udid %s: %s is served too", served.UDID, skipped.UDID)
	}
	if tun := e.tunnels(); len(tun) != 1 {
		t.Fatalf("GET / lists %d devices, want 1: %v", len(tun), tun)
	}
	entry := e.tunnels()[served.UDID][0]
	h := e.rsdThrough(served.UDID)

	// go-ios's agent routes.
	goios := func(path string) (int, []byte) {
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + goiosAddr + path)
		if err != nil {
			t.Fatalf("go-ios api %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := goios("/health"); code != 200 {
		t.Fatalf("/health %d", code)
	}
	waitFor(t, "go-ios /ready", func() bool { code, _ := goios("/ready"); return code == 200 })
	code, body := goios("/tunnels")
	var list []api.GoIOSTunnel
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 ||
		list[0] != (api.GoIOSTunnel{Address: entry.Address, RsdPort: entry.Port, Udid: served.UDID}) {
		t.Fatalf("go-ios /tunnels: %d %s, want the GET / entry %+v", code, body, entry)
	}
	if code, _ := goios("/tunnel/" + strings.ReplaceAll(served.UDID, "-", "")); code != 200 {
		t.Fatalf("go-ios /tunnel/<dashless serial>: %d", code)
	}
	if code, _ := goios("/tunnel/" + skipped.UDID); code != 404 {
		t.Fatalf("go-ios /tunnel/<unserved>: %d", code)
	}

	// appium's registry, through appium-ios-remotexpc's own client.
	_, apiPort, _ := net.SplitHostPort(e.api)
	out, err := peertest.Node(t, 120*time.Second, []string{"env", "XDG_DATA_HOME=" + t.TempDir()},
		"registry-client.mjs", apiPort, served.UDID, "--timeout=90")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Devices []string
		Service struct {
			Host string
			Port int
			UDID string
		}
		Tunnel struct {
			Host string
			Port int
			UDID string
		}
		Refreshed api.AppiumTunnel
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("registry-client output %s: %v", out, err)
	}
	if len(got.Devices) != 1 || got.Devices[0] != served.UDID {
		t.Fatalf("appium getAvailableDevices = %v, want [%s]", got.Devices, served.UDID)
	}
	if got.Tunnel.Host != entry.Address || got.Tunnel.Port != entry.Port || got.Tunnel.UDID != served.UDID {
		t.Fatalf("appium getTunnelForDevice = %+v, want GET /'s %+v", got.Tunnel, entry)
	}
	trusted, ok := h.Service("com.apple.mobile.lockdown.remote.trusted")
	if !ok || got.Service.Host != entry.Address || got.Service.Port != trusted.Port {
		t.Fatalf("appium resolveTunnelService = %+v, want %s:%d", got.Service, entry.Address, trusted.Port)
	}
	if len(got.Refreshed.Services) != len(h.Services) || got.Refreshed.Services["com.apple.mobile.lockdown.remote.trusted"].Port != strconv.Itoa(trusted.Port) {
		t.Fatalf("refresh-services catalog %+v, want the %d services of the RSD handshake", got.Refreshed.Services, len(h.Services))
	}
	// The advertised service answers: it is a real lockdown-over-RSD endpoint, not a stale port.
	c, err := net.DialTimeout("tcp", net.JoinHostPort(got.Service.Host, strconv.Itoa(got.Service.Port)), 10*time.Second)
	if err != nil {
		t.Fatalf("dial the service appium resolved: %v", err)
	}
	c.Close()
}

// TestUpstreamFederation registers one daemon's API as an upstream of another. Both run the
// same virtual phone (one UDID), as one phone seen by two hosts: the first daemon's GET / lists
// its own entry and then the upstream's, under that UDID, each at its own daemon's address (as
// tunneld appends upstream entries), and a client reaches RSD at the upstream's entry; removing
// the upstream drops its entry again.
func TestUpstreamFederation(t *testing.T) {
	a, b := startEnv(t, 1, false), startEnv(t, 1, false)
	udid := a.devs[0].UDID
	if b.devs[0].UDID != udid {
		t.Fatalf("the two virtual phones differ: %s %s", udid, b.devs[0].UDID)
	}
	a.waitPublished(udid)
	b.waitPublished(udid)
	aEntry, bEntry := a.tunnels()[udid][0], b.tunnels()[udid][0]
	post := func(method string) {
		req, _ := http.NewRequest(method, "http://"+a.api+"/upstream", strings.NewReader(`{"url": "http://`+b.api+`/"}`))
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s /upstream: %v %v", method, resp, err)
		}
		resp.Body.Close()
	}
	post(http.MethodPost)
	got := a.tunnels()[udid]
	if len(got) != 2 || got[0] != aEntry || got[1] != bEntry {
		t.Fatalf("GET / with an upstream: %+v, want [%+v %+v]", got, aEntry, bEntry)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, net.JoinHostPort(got[1].Address, strconv.Itoa(got[1].Port)), nil)
	if err != nil || h.UDID() != udid {
		t.Fatalf("RSD at the upstream's entry: %v", err)
	}
	c.Close()
	post(http.MethodDelete)
	if got := a.tunnels()[udid]; len(got) != 1 || got[0] != aEntry {
		t.Fatalf("GET / after removing the upstream: %+v", got)
	}
}
