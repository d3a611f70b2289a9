package profile

import (
	"errors"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"testing"
	"time"

	"howett.net/plist"
)

var spec23 = []string{
	"BasebandCertId", "BasebandKeyHashInformation", "BasebandSerialNumber", "BasebandVersion", "BoardId",
	"BuildVersion", "CPUArchitecture", "ChipID", "DeviceClass", "DeviceColor", "DeviceName", "DieID",
	"HardwareModel", "HasSiDP", "PartitionType", "ProductName", "ProductType", "ProductVersion",
	"ProductionSOC", "ProtocolVersion", "SupportedDeviceFamilies", "TelephonyCapability", "UniqueChipID",
	"UniqueDeviceID", "WiFiAddress",
}

// Keys the clients of §1.3 read from the session dictionary.
var clientKeys = []string{
	"UniqueDeviceID", "ProductVersion", "WiFiAddress", "UniqueChipID", "ProductType", "ProductName",
	"BuildVersion", "DeviceClass", "DeviceName", "CPUArchitecture", "HardwareModel", "HardwarePlatform",
	"EthernetAddress", "BluetoothAddress", "TimeIntervalSince1970", "TimeZoneOffsetFromUTC", "TimeZone",
	"ActivationState", "SerialNumber", "TelephonyCapability", "InternationalMobileEquipmentIdentity",
	"Uses24HourClock",
}

func fixedClock(s string) func() time.Time {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return tm }
}

func allDevices() []*Device {
	var out []*Device
	for _, p := range profiles {
		out = append(out, p.Device(""), p.Device("7"))
	}
	return out
}

func TestKeySets(t *testing.T) {
	for _, d := range allDevices() {
		pre := Keys(d.LockdownValues(false))
		got := slices.Clone(pre)
		sort.Strings(got)
		want := slices.Clone(spec23)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s no-session keys %v, want %v", d.UDID, got, want)
		}
		full := d.LockdownValues(true)
		keys := Keys(full)
		if len(keys) != 71 {
			t.Errorf("full dictionary has %d keys, want 71", len(keys))
		}
		uniq := map[string]bool{}
		for _, k := range keys {
			if uniq[k] {
				t.Errorf("duplicate key %s", k)
			}
			uniq[k] = true
		}
		for _, k := range append(slices.Clone(spec23), clientKeys...) {
			if !uniq[k] {
				t.Errorf("full dictionary lacks %s", k)
			}
		}
		if uniq["DevicePublicKey"] {
			t.Error("DevicePublicKey must be by-key only")
		}
	}
}

func TestTypeTraps(t *testing.T) {
	d := Default().Device("")
	m := ToMap(d.LockdownValues(true))
	want := func(key string, typ any) {
		t.Helper()
		if reflect.TypeOf(m[key]) != reflect.TypeOf(typ) {
			t.Errorf("%s is %T, want %T", key, m[key], typ)
		}
	}
	for _, k := range []string{"BasebandCertId", "BasebandChipID", "BoardId", "CertID", "ChipID", "DieID",
		"FusingStatus", "UniqueChipID", "PairRecordProtectionClass"} {
		want(k, uint64(0))
	}
	for _, k := range []string{"BasebandRegionSKU", "BasebandSerialNumber", "ChipSerialNo", "PkHash",
		"SoftwareBehavior", "ProximitySensorCalibration"} {
		want(k, []byte(nil))
	}
	for _, k := range []string{"MobileSubscriberCountryCode", "MobileSubscriberNetworkCode", "ProtocolVersion",
		"DeviceColor", "ProductVersion", "UniqueDeviceID", "BasebandMasterKeyHash"} {
		want(k, "")
	}
	for _, k := range []string{"TimeIntervalSince1970", "TimeZoneOffsetFromUTC"} {
		want(k, float64(0))
	}
	for _, k := range []string{"ProductionSOC", "HasSiDP", "TelephonyCapability", "BrickState", "Uses24HourClock",
		"PasswordProtected", "HostAttached", "TrustedHostAttached", "kCTPostponementInfoServiceProvisioningState"} {
		want(k, false)
	}
	fam, _ := m["SupportedDeviceFamilies"].([]any)
	if len(fam) != 1 || fam[0] != uint64(1) {
		t.Errorf("SupportedDeviceFamilies %#v", m["SupportedDeviceFamilies"])
	}
	nv, _ := m["NonVolatileRAM"].(map[string]any)
	for k, v := range nv {
		if _, isData := v.([]byte); isData == (k == "boot-args") {
			t.Errorf("NonVolatileRAM[%s] is %T", k, v)
		}
	}
	if len(nv) == 0 || nv["boot-args"] != "" {
		t.Errorf("NonVolatileRAM %#v", nv)
	}
	bk, _ := m["BasebandKeyHashInformation"].(map[string]any)
	if bk["AKeyStatus"] != uint64(2) || bk["SKeyStatus"] != uint64(0) {
		t.Errorf("BasebandKeyHashInformation %#v", bk)
	}
	if m["CertID"] != m["BasebandCertId"] || !reflect.DeepEqual(m["ChipSerialNo"], m["BasebandSerialNumber"]) {
		t.Error("CertID/ChipSerialNo do not equal the baseband values (§5.1)")
	}
	if m["UniqueChipID"] != m["DieID"] || m["UniqueChipID"] != d.ECID {
		t.Error("UniqueChipID/DieID/ECID differ")
	}
	if m["ActivationState"] != "Activated" || m["BrickState"] != false {
		t.Error("ActivationState/BrickState inconsistent")
	}
}

func TestClock(t *testing.T) {
	d := Default().Device("")
	for now, off := range map[string]float64{"2025-07-01T12:00:00.25Z": -14400, "2025-01-15T12:00:00Z": -18000} {
		d.Now = fixedClock(now)
		m := ToMap(d.LockdownValues(true))
		if m["TimeZoneOffsetFromUTC"] != off {
			t.Errorf("%s: offset %v, want %v", now, m["TimeZoneOffsetFromUTC"], off)
		}
		if want := float64(d.Now().UnixNano()) / 1e9; m["TimeIntervalSince1970"] != want {
			t.Errorf("TimeIntervalSince1970 %v, want %v", m["TimeIntervalSince1970"], want)
		}
	}
}

// typedValues decodes the way a type-strict client does (§1.4): any type mismatch fails.
type typedValues struct {
	BasebandCertId             uint64
	BasebandKeyHashInformation struct{ AKeyStatus, SKeyStatus int }
	BasebandSerialNumber       []byte
	BoardId                    int
	ChipID                     int
	DieID                      uint64
	FusingStatus               int
	NonVolatileRAM             struct {
		AutoBoot []byte `plist:"auto-boot"`
		BootArgs string `plist:"boot-args"`
	}
	ProductName             string
	ProductType             string
	ProductVersion          string
	SupportedDeviceFamilies []int
	TimeIntervalSince1970   float64
	TimeZoneOffsetFromUTC   float64
	UniqueChipID            uint64
	Uses24HourClock         bool
}

var xmlTypeRE = regexp.MustCompile(`<key>([^<]+)</key>\s*<(string|integer|real|true|false|data|dict|array)`)

func TestLockdownPlistRoundTrip(t *testing.T) {
	for _, d := range allDevices() {
		d.Now = fixedClock("2025-05-16T21:03:08.650657Z")
		for _, inSession := range []bool{false, true} {
			orig := ToMap(d.LockdownValues(inSession))
			reply := map[string]any{"Request": "GetValue", "Value": orig}
			raw, err := plist.Marshal(reply, plist.XMLFormat)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if _, err := plist.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back["Value"], orig) {
				t.Errorf("round trip changed values:\n%#v\n%#v", back["Value"], orig)
			}
			xmlTypes := map[string]string{}
			for _, m := range xmlTypeRE.FindAllStringSubmatch(string(raw), -1) {
				xmlTypes[m[1]] = m[2]
			}
			for k, v := range orig {
				if got, want := xmlTypes[k], plistKind(v); got != want && !(want == "bool" && (got == "true" || got == "false")) {
					t.Errorf("%s encoded as <%s>, want %s", k, got, want)
				}
			}
			if inSession {
				var tv typedValues
				if _, err := plist.Unmarshal(mustMarshal(t, orig), &tv); err != nil {
					t.Fatalf("typed decode: %v", err)
				}
				if tv.ProductVersion != d.ProductVersion || tv.UniqueChipID != d.ECID || tv.TimeZoneOffsetFromUTC != -14400 ||
					len(tv.SupportedDeviceFamilies) != 1 || string(tv.NonVolatileRAM.AutoBoot) != "true" {
					t.Errorf("typed decode incomplete: %+v", tv)
				}
			}
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := plist.Marshal(v, plist.XMLFormat)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func plistKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case uint64, int64:
		return "integer"
	case float64:
		return "real"
	case bool:
		return "bool"
	case []byte:
		return "data"
	case map[string]any:
		return "dict"
	case []any:
		return "array"
	}
	return "unexpected"
}

func TestLockdownValue(t *testing.T) {
	d := Default().Device("")
	code := func(err error) string {
		var le *LockdownError
		if errors.As(err, &le) {
			return le.Code
		}
		return ""
	}
	for _, tc := range []struct {
		domain, key string
		session     bool
		want        any
		code        string
	}{
		{"", "ProductVersion", false, "17.5.1", ""},
		{"", "UniqueDeviceID", false, "00008101-000A1B2C3D4E5F01", ""},
		{"", "UniqueChipID", false, uint64(2844626588163841), ""},
		{"", "WiFiAddress", false, "02:53:49:4d:01:01", ""},
		{"", "SerialNumber", false, nil, CodeGetProhibited},
		{"", "SerialNumber", true, "SIMULATED01", ""},
		{"", "Uses24HourClock", true, false, ""},
		{"", "NoSuchKey", true, nil, CodeMissingValue},
		{"", "NoSuchKey", false, nil, CodeMissingValue},
		{"", "ActivationInfo", true, nil, CodeMissingValue},
		{"com.apple.security.mac.amfi", "DeveloperModeStatus", true, true, ""},
		{"com.apple.security.mac.amfi", "DeveloperModeStatus", false, nil, CodeGetProhibited},
		{"com.apple.mobile.battery", "BatteryCurrentCapacity", true, uint64(80), ""},
		{"com.apple.mobile.battery", "HasBattery", true, true, ""},
		{"com.apple.international", "Locale", true, "en_US", ""},
		{"com.apple.Accessibility", "VoiceOverTouchEnabledByiTunes", true, uint64(0), ""},
		{"com.apple.mobile.backup", "WillEncrypt", true, false, ""},
		{"com.apple.mobile.iTunes", "MinITunesVersion", true, nil, CodeMissingValue},
		{"com.apple.mobile.battery", "Nope", true, nil, CodeMissingValue},
	} {
		v, err := d.LockdownValue(tc.domain, tc.key, tc.session)
		if code(err) != tc.code || (tc.code == "" && !reflect.DeepEqual(v, tc.want)) {
			t.Errorf("LockdownValue(%q,%q,%v) = %#v, %v; want %#v, %q", tc.domain, tc.key, tc.session, v, err, tc.want, tc.code)
		}
		if err != nil && code(err) == "" {
			t.Errorf("error is not a *LockdownError: %v", err)
		}
	}
	all, err := d.LockdownValue("", "", false)
	if m, ok := all.(map[string]any); err != nil || !ok || len(m) != 25 {
		t.Errorf("whole no-session dict: %T %v", all, err)
	}
	intl, err := d.LockdownValue("com.apple.international", "", true)
	if m, ok := intl.(map[string]any); err != nil || !ok || len(m) != 4 {
		t.Errorf("whole international domain: %#v %v", intl, err)
	}
	for _, dom := range LockdownDomains() {
		if _, err := d.LockdownValue(dom, "", true); err != nil {
			t.Errorf("domain %s: %v", dom, err)
		}
		raw := mustMarshal(t, func() any { v, _ := d.LockdownValue(dom, "", true); return v }())
		if len(raw) == 0 {
			t.Errorf("domain %s does not encode", dom)
		}
	}
}
