package sim

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/iosmux/iosmux/discovery"
	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/sim/profile"
)

// TestMDNSAdvertsZeroconf: python3-zeroconf, a third-party browser, run in a network namespace
// across a veth, resolves the simulated phone's _remoted._tcp and _remotepairing._tcp adverts
// with their ports, address and TXT (identifier, the right auth tag, model, ver).
func TestMDNSAdvertsZeroconf(t *testing.T) {
	l := peertest.NetNSLink(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import zeroconf").Run(); err != nil {
		peertest.Missing(t, "python3-zeroconf: %v", err)
	}
	l.AddIPv4(t, "10.231.0.1/24", "10.231.0.2/24")
	d := NewDevice(profile.Default(), "mdns-zeroconf", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := MDNSOptions{RemotedPort: 58783, RemotePairingPort: 49152}
	r, err := d.NewMDNS(ctx, l.HostIf, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	script := filepath.Join(peertest.InteropDir(), "mdns_browse.py")
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	cmd := exec.CommandContext(cctx, "ip", "netns", "exec", l.NS, "/usr/bin/python3", script, "15",
		discovery.TypeRemoted, discovery.TypeRemotePairing)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mdns_browse.py: %v %s", err, out)
	}
	var found []struct {
		Type, Name string
		Port       int
		Addresses  []string
		TXT        map[string]*string
	}
	if err := json.Unmarshal(out, &found); err != nil {
		t.Fatalf("mdns_browse.py printed %q: %v", out, err)
	}
	byType := map[string]int{}
	for i, f := range found {
		byType[f.Type] = i
	}
	if len(found) != 2 {
		t.Fatalf("zeroconf resolved %+v, want both adverts", found)
	}
	rd, rp := found[byType[discovery.TypeRemoted]], found[byType[discovery.TypeRemotePairing]]
	if rd.Port != 58783 || rd.Name != d.UDID+"."+discovery.TypeRemoted || !slices.Contains(rd.Addresses, "10.231.0.1") || !slices.Contains(rd.Addresses, "fe80::1") {
		t.Fatalf("_remoted._tcp as zeroconf sees it: %+v", rd)
	}
	txt := func(k string) string {
		if v := rp.TXT[k]; v != nil {
			return *v
		}
		return ""
	}
	id := d.RemotePairingIdentifier()
	if rp.Port != 49152 || txt("identifier") != id || txt("model") != d.ProductType || txt("ver") != d.ProductVersion ||
		!discovery.MatchAuthTag(d.RemotePairingAltIRK(), id, txt("authTag")) {
		t.Fatalf("_remotepairing._tcp as zeroconf sees it: %+v", rp)
	}
}
