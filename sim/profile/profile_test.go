package profile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// hwRow is one device-profile.md §5.2 row.
type hwRow struct {
	model   string
	boardID uint64
	chipID  uint64
}

var hwTable = map[string]hwRow{
	"iPhone13,2": {"D53gAP", 12, 33025},
	"iPhone16,1": {"D83AP", 4, 33072},
	"iPhone17,3": {"D47AP", 8, 33088},
}

// buildPrefix maps the iOS major version to the build number prefix (§5.3).
var buildPrefix = map[int]string{17: "21", 18: "22", 26: "23"}

var udidRE = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{16}$`)

// restoreLong derives RestoreLongVersion from a build string per §5.3.
func restoreLong(build string) string {
	m := regexp.MustCompile(`^(\d\d)([A-Z])(\d+)([a-z]?)$`).FindStringSubmatch(build)
	if m == nil {
		return ""
	}
	num, beta, suffix := m[3], "0", 0
	if len(num) == 4 {
		beta, num = num[:1], num[1:]
	}
	if m[4] != "" {
		suffix = int(m[4][0]-'a') + 1
	}
	n, _ := strconv.Atoi(num)
	return fmt.Sprintf("%s.%d.%d.%s.%d,0", m[1], int(m[2][0]-'A')+1, n, beta, suffix)
}

func TestRestoreLongRule(t *testing.T) {
	for build, want := range map[string]string{
		"21A5277j": "21.1.277.5.10,0", "21A360": "21.1.360.0.0,0", "22A5297f": "22.1.297.5.6,0",
		"22A3354": "22.1.354.3.0,0", "23D8133": "23.4.133.8.0,0", "21F90": "21.6.90.0.0,0",
	} {
		if got := restoreLong(build); got != want {
			t.Errorf("restoreLong(%s) = %s, want %s", build, got, want)
		}
	}
}

func TestNamesAndSelection(t *testing.T) {
	names := Names()
	if len(names) != 3 {
		t.Fatalf("Names() = %v, want 3 profiles", names)
	}
	if names[0] != Default().Name {
		t.Errorf("default %q is not first in %v", Default().Name, names)
	}
	for _, n := range names {
		p, err := ByName(n)
		if err != nil || p.Name != n {
			t.Errorf("ByName(%q) = %v, %v", n, p, err)
		}
		if q, _ := ByName(strings.ToUpper(n)); q != p {
			t.Errorf("ByName is not case-insensitive for %q", n)
		}
	}
	for i, letter := range []string{"a", "B", "c"} {
		if p, err := ByName(letter); err != nil || p.Name != names[i] {
			t.Errorf("ByName(%q) = %v, %v", letter, p, err)
		}
	}
	if p, err := ByName(""); err != nil || p != Default() {
		t.Errorf(`ByName("") = %v, %v`, p, err)
	}
	if _, err := ByName("iphone3g"); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestProfileConsistency(t *testing.T) {
	for _, p := range profiles {
		t.Run(p.Name, func(t *testing.T) {
			hw, ok := hwTable[p.ProductType]
			if !ok {
				t.Fatalf("ProductType %s not in §5.2 table", p.ProductType)
			}
			if p.HardwareModel != hw.model || p.BoardID != hw.boardID || p.ChipID != hw.chipID {
				t.Errorf("hardware %s/%d/%d, want %+v", p.HardwareModel, p.BoardID, p.ChipID, hw)
			}
			if want := fmt.Sprintf("t%x", p.ChipID); p.HardwarePlatform != want {
				t.Errorf("HardwarePlatform %s, want %s", p.HardwarePlatform, want)
			}
			major, minor := versionParts(t, p.ProductVersion)
			if !strings.HasPrefix(p.BuildVersion, buildPrefix[major]) {
				t.Errorf("BuildVersion %s does not match iOS %d", p.BuildVersion, major)
			}
			if letter := p.BuildVersion[2]; int(letter-'A') != minor {
				t.Errorf("BuildVersion %s letter %c does not match minor %d", p.BuildVersion, letter, minor)
			}
			if got := restoreLong(p.BuildVersion); got != p.RestoreLongVersion {
				t.Errorf("RestoreLongVersion %s, derived %s", p.RestoreLongVersion, got)
			}
			if p.RegionCode()+"/A" != p.RegionInfo {
				t.Errorf("RegionCode %s vs RegionInfo %s", p.RegionCode(), p.RegionInfo)
			}
			checkIdentity(t, p, p.Device("").Identity)
		})
	}
}

func versionParts(t *testing.T, v string) (major, minor int) {
	t.Helper()
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		t.Fatalf("ProductVersion %q has no dot (§0 rule 3)", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("ProductVersion %q is not numeric", v)
	}
	return major, minor
}

func luhnValid(s string) bool {
	return len(s) > 1 && luhnComplete(s[:len(s)-1]) == s
}

var macRE = regexp.MustCompile(`^02:53:49(:[0-9a-f]{2}){3}$`)

func checkIdentity(t *testing.T, p *Profile, id Identity) {
	t.Helper()
	if id.ECID == 0 || id.ECID >= 1<<53 {
		t.Errorf("ECID %d out of range", id.ECID)
	}
	for _, imei := range []string{id.IMEI, id.IMEI2} {
		if len(imei) != 15 || !luhnValid(imei) {
			t.Errorf("IMEI %s is not a Luhn-valid 15-digit number", imei)
		}
	}
	if id.MEID != id.IMEI[:14] {
		t.Errorf("MEID %s is not IMEI[:14] of %s", id.MEID, id.IMEI)
	}
	macs := []string{id.WiFiAddress, id.BluetoothAddress, id.EthernetAddress}
	for _, m := range macs {
		if !macRE.MatchString(m) {
			t.Errorf("MAC %q not lower-case 02:53:49:…", m)
		}
	}
	if macs[0] == macs[1] || macs[1] == macs[2] || macs[0] == macs[2] {
		t.Errorf("MACs not distinct: %v", macs)
	}
	if len(id.BasebandSerialNumber) != 4 {
		t.Errorf("BasebandSerialNumber %x, want 4 bytes", id.BasebandSerialNumber)
	}
	if !strings.HasPrefix(id.SerialNumber, "SIM") || !strings.HasPrefix(id.DeviceName, "Simulated ") {
		t.Errorf("serial %q / name %q not simulator-marked", id.SerialNumber, id.DeviceName)
	}
}

func TestCanonicalDevice(t *testing.T) {
	want := []string{"00008101-000A1B2C3D4E5F01", "00008130-000A1B2C3D4E5F02", "00008140-000A1B2C3D4E5F03"}
	for i, p := range profiles {
		d := p.Device("")
		if d.UDID != want[i] {
			t.Errorf("%s canonical UDID %s, want %s", p.Name, d.UDID, want[i])
		}
		if d.ECID != 2844626588163841+uint64(i) {
			t.Errorf("%s canonical ECID %d", p.Name, d.ECID)
		}
	}
}

func TestDerivedDevices(t *testing.T) {
	for _, p := range profiles {
		seen := map[string]string{}
		for _, seed := range []string{"", "0", "1", "2", "sim-a", "sim-b"} {
			d := p.Device(seed)
			if !udidRE.MatchString(d.UDID) || d.UDID != FormatUDID(p.ChipID, d.ECID) {
				t.Errorf("%s seed %q: UDID %s inconsistent with ChipID/ECID", p.Name, seed, d.UDID)
			}
			if !strings.HasPrefix(d.UDID, fmt.Sprintf("%08X-", p.ChipID)) {
				t.Errorf("UDID %s lacks chip prefix", d.UDID)
			}
			checkIdentity(t, p, d.Identity)
			if prev, dup := seen[d.UDID]; dup {
				t.Errorf("%s: seeds %q and %q give the same UDID %s", p.Name, prev, seed, d.UDID)
			}
			seen[d.UDID] = seed
			again := p.Device(seed)
			if again.UDID != d.UDID || again.SerialNumber != d.SerialNumber ||
				again.WiFiAddress != d.WiFiAddress || again.IMEI != d.IMEI || again.DeviceName != d.DeviceName {
				t.Errorf("%s seed %q not stable: %+v vs %+v", p.Name, seed, d.Identity, again.Identity)
			}
			if again.BootSessionID == d.BootSessionID {
				t.Errorf("BootSessionID not fresh per Device")
			}
		}
		a, b := p.Device("0"), p.Device("1")
		if a.SerialNumber == b.SerialNumber || a.WiFiAddress == b.WiFiAddress || a.IMEI == b.IMEI {
			t.Errorf("%s: seeds 0 and 1 share identity fields", p.Name)
		}
	}
}

func TestUDIDOverride(t *testing.T) {
	p := Default()
	const udid = "00008101-0001234567890ABC"
	for _, seed := range []string{udid, strings.ToLower(udid), strings.ReplaceAll(udid, "-", "")} {
		d := p.Device(seed)
		if d.UDID != udid || d.ECID != 0x0001234567890ABC {
			t.Errorf("Device(%q) = %s / %x, want %s", seed, d.UDID, d.ECID, udid)
		}
	}
	// A UDID of another chip is only a seed.
	d := p.Device("00008130-0001234567890ABC")
	if !strings.HasPrefix(d.UDID, "00008101-") || d.ECID == 0x0001234567890ABC {
		t.Errorf("foreign UDID used verbatim: %s", d.UDID)
	}
}
