package profile

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"reflect"
	"strings"
	"testing"
)

func TestRSDProperties(t *testing.T) {
	for _, d := range allDevices() {
		props := d.RSDProperties()
		if len(props) != 44 {
			t.Errorf("%d RSD properties, want 44", len(props))
		}
		m := ToMap(props)
		if len(m) != len(props) {
			t.Error("duplicate RSD property keys")
		}
		lock := ToMap(d.LockdownValues(true))
		for _, k := range []string{"UniqueDeviceID", "UniqueChipID", "ChipID", "BoardId", "ProductType", "ProductName",
			"BuildVersion", "CPUArchitecture", "DeviceClass", "DeviceColor", "SerialNumber", "ModelNumber",
			"RegionInfo", "HardwarePlatform", "HumanReadableProductVersionString"} {
			if !reflect.DeepEqual(m[k], lock[k]) {
				t.Errorf("RSD %s = %#v, lockdown %#v", k, m[k], lock[k])
			}
		}
		for rsd, ld := range map[string]string{"OSVersion": "ProductVersion", "HWModel": "HardwareModel",
			"EthernetMacAddress": "EthernetAddress", "ThinningProductType": "ProductType",
			"SupplementalBuildVersion": "BuildVersion"} {
			if m[rsd] != lock[ld] {
				t.Errorf("RSD %s = %v, lockdown %s = %v", rsd, m[rsd], ld, lock[ld])
			}
		}
		if m["BootSessionUUID"] != strings.ToLower(lock["BootSessionID"].(string)) {
			t.Error("BootSessionUUID is not the lower-case BootSessionID")
		}
		if m["RegionCode"] != "LL" || m["RemoteXPCVersionFlags"] != uint64(0x0100000000000006) {
			t.Errorf("RegionCode %v / RemoteXPCVersionFlags %v", m["RegionCode"], m["RemoteXPCVersionFlags"])
		}
		if _, ok := m["UniqueDeviceID"].(string); !ok {
			t.Error("UniqueDeviceID must be a string (go-ios)")
		}
		if _, ok := m["ReleaseType"]; ok {
			t.Error("ReleaseType on a release build")
		}
		for _, kv := range props {
			switch kv.Value.(type) {
			case string, bool, uint64, int64:
			default:
				t.Errorf("RSD %s has type %T", kv.Key, kv.Value)
			}
		}
	}
}

func TestServices(t *testing.T) {
	d := Default().Device("")
	svcs := d.Services()
	if len(svcs) != 80 {
		t.Errorf("%d services, want 80", len(svcs))
	}
	byName := map[string]Service{}
	for _, s := range svcs {
		if _, dup := byName[s.Name]; dup {
			t.Errorf("duplicate service %s", s.Name)
		}
		byName[s.Name] = s
		if s.Entitlement() == "" {
			t.Errorf("%s has no Entitlement", s.Name)
		}
		if strings.HasSuffix(s.Name, ShimSuffix) && s.UsesRemoteXPC {
			t.Errorf("shim %s marked RemoteXPC", s.Name)
		}
	}
	for name, xpc := range map[string]bool{
		"com.apple.coredevice.appservice":                          true,
		"com.apple.internal.dt.coredevice.untrusted.tunnelservice": true,
		"com.apple.afc.shim.remote":                                false,
		"com.apple.syslog_relay.shim.remote":                       false,
		"com.apple.instruments.dtservicehub":                       false,
		"com.apple.mobile.lockdown.remote.trusted":                 false,
		"com.apple.mobile.lockdown.remote.untrusted":               false,
		"com.apple.internal.devicecompute.CoreDeviceProxy":         false,
		"com.apple.coredevice.screencaptureservice":                true,
	} {
		s, ok := byName[name]
		if !ok || s.UsesRemoteXPC != xpc {
			t.Errorf("service %s: present %v, UsesRemoteXPC %v, want %v", name, ok, s.UsesRemoteXPC, xpc)
		}
	}
	tun := byName["com.apple.internal.dt.coredevice.untrusted.tunnelservice"]
	if !tun.HasServiceVersion || tun.ServiceVersion != 2 || tun.Entitlement() != "com.apple.dt.coredevice.tunnelservice.client" {
		t.Errorf("tunnelservice %+v", tun)
	}
	entry := tun.Entry(49603)
	if got := Keys(entry); !reflect.DeepEqual(got, []string{"Entitlement", "Port", "Properties"}) {
		t.Errorf("entry keys %v", got)
	}
	if port, _ := Lookup(entry, "Port"); port != "49603" {
		t.Errorf("Port %#v, want string", port)
	}
	props, _ := Lookup(entry, "Properties")
	if !reflect.DeepEqual(props, []KV{{"UsesRemoteXPC", true}, {"ServiceVersion", int64(2)}}) {
		t.Errorf("Properties %#v", props)
	}
	if _, ok := Lookup(byName["com.apple.afc.shim.remote"].Entry(1)[2].Value.([]KV), "ServiceVersion"); ok {
		t.Error("ServiceVersion on afc shim")
	}
	un := d.UntrustedServices()
	if len(un) != 7 {
		t.Errorf("%d untrusted services, want 7", len(un))
	}
	for _, s := range un {
		if s.Name == "com.apple.mobile.insecure_notification_proxy.shim.remote" &&
			(s.UsesRemoteXPC || s.Entitlement() != "com.apple.mobile.lockdown.remote.untrusted") {
			t.Errorf("untrusted %+v", s)
		}
	}
}

func TestDeviceKey(t *testing.T) {
	p := Default()
	a, a2, b := p.Device(""), p.Device(""), p.Device("other")
	pemA := a.DevicePublicKeyPEM()
	blk, rest := pem.Decode(pemA)
	if blk == nil || blk.Type != "RSA PUBLIC KEY" || len(rest) != 0 {
		t.Fatalf("DevicePublicKey is not one PKCS#1 PEM block: %q", pemA)
	}
	pub, err := x509.ParsePKCS1PublicKey(blk.Bytes)
	if err != nil || pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("public key: %v bits=%d", err, pub.N.BitLen())
	}
	if !a.PrivateKey().PublicKey.Equal(pub) {
		t.Error("PrivateKey does not match DevicePublicKey")
	}
	if err := a.PrivateKey().Validate(); err != nil {
		t.Error(err)
	}
	if string(a2.DevicePublicKeyPEM()) != string(pemA) {
		t.Error("same seed, different key")
	}
	if string(b.DevicePublicKeyPEM()) == string(pemA) {
		t.Error("different devices share a key")
	}
	// Stable across runs: the key depends only on profile and UDID, not on the cache.
	k := deterministicRSAKey("iosmux/sim/profile/devicekey\x00"+p.Name+"\x00"+a.UDID, deviceKeyBits)
	if !k.PublicKey.Equal(pub) {
		t.Error("key derivation not deterministic")
	}
	v, err := a.LockdownValue("", "DevicePublicKey", false)
	if got, ok := v.([]byte); err != nil || !ok || string(got) != string(pemA) {
		t.Errorf("LockdownValue DevicePublicKey = %T %v", v, err)
	}
	// Concurrent first use of one key is safe (run with -race).
	c := p.Device("concurrent")
	keys := make(chan *rsa.PrivateKey, 4)
	for range 4 {
		go func() { keys <- c.PrivateKey() }()
	}
	first := <-keys
	for range 3 {
		if <-keys != first {
			t.Error("concurrent PrivateKey calls returned different keys")
		}
	}
}
