package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
	"github.com/iosmux/iosmux/pairrecord"
)

// limd runs a libimobiledevice tool against the simulated usbmuxd on a Unix socket.
func limd(t *testing.T, u *Usbmuxd, tool string, args ...string) (string, error) {
	t.Helper()
	bin := peertest.Tool(t, tool)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"USBMUXD_SOCKET_ADDRESS="+u.SocketAddress(),
		"HOME="+home, "XDG_CONFIG_HOME="+home) // keep the tools away from the user's files
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Logf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", tool, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), err
}

// TestLibimobiledeviceList: idevice_id -l lists every plugged device (usbmuxd ListDevices).
func TestLibimobiledeviceList(t *testing.T) {
	u, devs, _ := startUsbmuxd(t, 2)
	out, err := limd(t, u, "idevice_id", "-l")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if !strings.Contains(out, d.UDID) {
			t.Fatalf("idevice_id -l output %q lacks %s", out, d.UDID)
		}
	}
}

// TestLibimobiledevicePairValidateInfo: idevicepair pair (Trust accepted) stores a record
// through usbmuxd SavePairRecord; validate and ideviceinfo then run full TLS sessions with it.
func TestLibimobiledevicePairValidateInfo(t *testing.T) {
	u, devs, _ := startUsbmuxd(t, 1)
	d := devs[0]
	if _, err := limd(t, u, "idevicepair", "-u", d.UDID, "pair"); err != nil {
		t.Fatal(err)
	}
	hosts := d.PairedHostIDs()
	data, ok := u.PairRecord(d.UDID)
	if len(hosts) != 1 || !ok {
		t.Fatalf("after idevicepair pair: device trusts %v, usbmuxd record %v", hosts, ok)
	}
	rec, err := pairrecord.Parse(data)
	if err != nil || rec.HostID != hosts[0] || rec.SystemBUID != u.BUID() || len(rec.EscrowBag) == 0 {
		t.Fatalf("saved record %v %v", rec, err)
	}
	if _, err := limd(t, u, "idevicepair", "-u", d.UDID, "validate"); err != nil {
		t.Fatal(err)
	}
	out, err := limd(t, u, "ideviceinfo", "-u", d.UDID, "-k", "ProductType")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != d.ProductType {
		t.Fatalf("ideviceinfo -k ProductType: %q, want %q", out, d.ProductType)
	}
	// SerialNumber is session-only: getting it proves the TLS session.
	out, err = limd(t, u, "ideviceinfo", "-u", d.UDID, "-k", "SerialNumber")
	if err != nil || strings.TrimSpace(out) != d.SerialNumber {
		t.Fatalf("ideviceinfo -k SerialNumber: %q %v", out, err)
	}

	// iosmux's client runs a session with the record libimobiledevice made (SHA-1
	// certificates, PKCS#8 keys).
	m := newMux(t, strings.TrimPrefix(u.SocketAddress(), "UNIX:"))
	ctx := testCtx(t)
	dev, err := m.FindDevice(ctx, d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Lockdown(ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartSession(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetString(ctx, "", "SerialNumber"); err != nil || v != d.SerialNumber {
		t.Fatalf("iosmux session with libimobiledevice's record: %q %v", v, err)
	}
}

// TestLibimobiledeviceUsesIosmuxRecord: a record iosmux paired and saved in usbmuxd works for
// ideviceinfo's TLS session (libimobiledevice presents the record's RootCertificate/Key).
func TestLibimobiledeviceUsesIosmuxRecord(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	d := devs[0]
	pairDevice(t, newMux(t, path), d)
	if _, err := limd(t, u, "idevicepair", "-u", d.UDID, "validate"); err != nil {
		t.Fatal(err)
	}
	out, err := limd(t, u, "ideviceinfo", "-u", d.UDID, "-k", "SerialNumber")
	if err != nil || strings.TrimSpace(out) != d.SerialNumber {
		t.Fatalf("ideviceinfo -k SerialNumber with iosmux's record: %q %v", out, err)
	}
	// Once the device forgets the host (and refuses to pair again), validate must fail:
	// the successes above were not vacuous.
	d.Unpair(d.PairedHostIDs()[0])
	d.SetTrust(TrustDeny)
	if _, err := limd(t, u, "idevicepair", "-u", d.UDID, "validate"); err == nil {
		t.Fatal("idevicepair validate succeeded for a host the device does not know")
	}
}

// TestLibimobiledevicePairDenied: a device that answers "Don't Trust" makes idevicepair fail
// and leaves no record.
func TestLibimobiledevicePairDenied(t *testing.T) {
	u, devs, _ := startUsbmuxd(t, 1)
	devs[0].SetTrust(TrustDeny)
	if _, err := limd(t, u, "idevicepair", "-u", devs[0].UDID, "pair"); err == nil {
		t.Fatal("idevicepair pair succeeded on a device that denies")
	}
	if _, ok := u.PairRecord(devs[0].UDID); ok || len(devs[0].PairedHostIDs()) != 0 {
		t.Fatal("a record exists after a denied pairing")
	}
}

// TestAppiumUsbmuxList: appium-ios-remotexpc's usbmux client lists the devices.
func TestAppiumUsbmuxList(t *testing.T) {
	_, devs, path := startUsbmuxd(t, 2)
	out, err := peertest.Node(t, 60*time.Second, nil, "usbmux-list.mjs", path)
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		DeviceID   uint32
		Properties struct {
			SerialNumber   string
			ConnectionType string
		}
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(list) != len(devs) {
		t.Fatalf("appium listed %d devices, want %d", len(list), len(devs))
	}
	for i, e := range list {
		if e.Properties.SerialNumber != devs[i].UDID || e.Properties.ConnectionType != "USB" || e.DeviceID == 0 {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
}

// TestAppiumUsbmuxPairRecord: appium reads the BUID and the record a pairing stored, and its
// certificates and keys are valid PEM that belong together.
func TestAppiumUsbmuxPairRecord(t *testing.T) {
	u, devs, path := startUsbmuxd(t, 1)
	d := devs[0]
	out, err := peertest.Node(t, 60*time.Second, nil, "usbmux-pairrecord.mjs", path, d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	var none struct {
		BUID       string          `json:"buid"`
		PairRecord json.RawMessage `json:"pairRecord"`
	}
	if err := json.Unmarshal(out, &none); err != nil || none.BUID != u.BUID() || string(none.PairRecord) != "null" {
		t.Fatalf("before pairing: %s (%v)", out, err)
	}
	rec, _ := pairDevice(t, newMux(t, path), d)
	out, err = peertest.Node(t, 60*time.Second, nil, "usbmux-pairrecord.mjs", path, d.UDID)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		BUID       string `json:"buid"`
		PairRecord struct {
			Keys                      []string                   `json:"keys"`
			HostID                    string                     `json:"HostID"`
			SystemBUID                string                     `json:"SystemBUID"`
			WiFiMACAddress            string                     `json:"WiFiMACAddress"`
			Certificates              map[string]json.RawMessage `json:"certificates"`
			HostKeyMatchesCertificate bool                       `json:"hostKeyMatchesCertificate"`
			RootKeyMatchesCertificate bool                       `json:"rootKeyMatchesCertificate"`
			EscrowBagBytes            int                        `json:"escrowBagBytes"`
		} `json:"pairRecord"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	p := got.PairRecord
	if got.BUID != u.BUID() || p.HostID != rec.HostID || p.SystemBUID != u.BUID() || p.WiFiMACAddress != d.WiFiAddress {
		t.Fatalf("appium read %s", out)
	}
	if !p.HostKeyMatchesCertificate || !p.RootKeyMatchesCertificate || p.EscrowBagBytes != len(rec.EscrowBag) || len(p.Keys) != 9 {
		t.Fatalf("appium record checks: %s", out)
	}
	for name, c := range p.Certificates {
		if bytes.Contains(c, []byte(`"error"`)) || string(c) == "null" {
			t.Fatalf("appium cannot parse %s: %s", name, c)
		}
	}
}
