package profile

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // TimeZoneOffsetFromUTC must work on hosts without zoneinfo
)

// Lockdown error strings (lockdown.md §4) used by LockdownValue (device-profile.md §2.6).
const (
	CodeMissingValue  = "MissingValue"  // unknown key or domain
	CodeGetProhibited = "GetProhibited" // session-only key or domain asked without a session
)

// LockdownError is a GetValue failure; Code is the lockdown Error string for the reply
// {Request:"GetValue", Key:<k>, Error:<Code>}.
type LockdownError struct {
	Domain, Key string
	Code        string
}

func (e *LockdownError) Error() string {
	return fmt.Sprintf("lockdown GetValue domain=%q key=%q: %s", e.Domain, e.Key, e.Code)
}

// noSessionKeys is the 25-key set of device-profile.md §2.3.
var noSessionKeys = map[string]bool{
	"BasebandCertId": true, "BasebandKeyHashInformation": true, "BasebandSerialNumber": true,
	"BasebandVersion": true, "BoardId": true, "BuildVersion": true, "CPUArchitecture": true,
	"ChipID": true, "DeviceClass": true, "DeviceColor": true, "DeviceName": true, "DieID": true,
	"HardwareModel": true, "HasSiDP": true, "PartitionType": true, "ProductName": true,
	"ProductType": true, "ProductVersion": true, "ProductionSOC": true, "ProtocolVersion": true,
	"SupportedDeviceFamilies": true, "TelephonyCapability": true, "UniqueChipID": true,
	"UniqueDeviceID": true, "WiFiAddress": true,
}

// LockdownValues returns the default-domain GetValue dictionary (no Domain, no Key), in the
// order of device-profile.md §1.2: the full 71-key dictionary (§1.2 a–c) when inSession
// (after StartSession, or on RSD lockdown.remote.trusted), else the 25 keys of §2.3.
// Integers are uint64, reals float64, data []byte, arrays []any, dictionaries map[string]any.
func (d *Device) LockdownValues(inSession bool) []KV {
	all := d.fullValues()
	if inSession {
		return all
	}
	out := make([]KV, 0, len(noSessionKeys))
	for _, kv := range all {
		if noSessionKeys[kv.Key] {
			out = append(out, kv)
		}
	}
	return out
}

func (d *Device) fullValues() []KV {
	p := d.Profile
	now := d.now()
	tzOffset := 0.0
	if loc := timeZone(); loc != nil {
		_, off := now.In(loc).Zone()
		tzOffset = float64(off)
	}
	return []KV{
		// a) identity / hardware / OS
		{"UniqueDeviceID", d.UDID},
		{"UniqueChipID", d.ECID},
		{"DieID", d.ECID},
		{"ChipID", p.ChipID},
		{"BoardId", p.BoardID},
		{"HardwareModel", p.HardwareModel},
		{"HardwarePlatform", p.HardwarePlatform},
		{"CPUArchitecture", "arm64e"},
		{"ProductType", p.ProductType},
		{"ProductName", "iPhone OS"},
		{"ProductVersion", p.ProductVersion},
		{"BuildVersion", p.BuildVersion},
		{"HumanReadableProductVersionString", p.ProductVersion},
		{"DeviceClass", "iPhone"},
		{"DeviceColor", "1"},
		{"DeviceName", d.DeviceName},
		{"ModelNumber", p.ModelNumber},
		{"RegionInfo", p.RegionInfo},
		{"SerialNumber", d.SerialNumber},
		{"MLBSerialNumber", d.MLBSerialNumber},
		{"WirelessBoardSerialNumber", d.WirelessBoardSerialNumber},
		{"FirmwareVersion", p.FirmwareVersion},
		{"SupportedDeviceFamilies", []any{uint64(1)}},
		{"PartitionType", "GUID_partition_scheme"},
		{"ProductionSOC", true},
		{"HasSiDP", true},
		{"FusingStatus", uint64(3)},
		{"CertID", uint64(baseBasebandCertID)},
		{"ChipSerialNo", clone(d.BasebandSerialNumber)},
		{"PkHash", make([]byte, 32)},
		{"ProximitySensorCalibration", proximityBlob()},
		{"SoftwareBehavior", append([]byte{0x41, 0x01}, make([]byte, 14)...)},
		{"SoftwareBundleVersion", ""},
		{"NonVolatileRAM", map[string]any{
			"boot-args": "",
			"auto-boot": []byte("true"),
			"bootdelay": []byte("0"),
		}},
		{"UseRaptorCerts", true},
		{"ProtocolVersion", "2"},
		{"BootSessionID", d.BootSessionID},
		{"PairRecordProtectionClass", uint64(4)},

		// b) state / host / clock
		{"ActivationState", "Activated"},
		{"ActivationStateAcknowledged", true},
		{"BrickState", false},
		{"HostAttached", true},
		{"TrustedHostAttached", true},
		{"PasswordProtected", false},
		{"TimeIntervalSince1970", float64(now.UnixNano()) / 1e9},
		{"TimeZone", baseTimeZone},
		{"TimeZoneOffsetFromUTC", tzOffset},
		{"Uses24HourClock", false},

		// c) radios / baseband (no SIM)
		{"WiFiAddress", d.WiFiAddress},
		{"BluetoothAddress", d.BluetoothAddress},
		{"EthernetAddress", d.EthernetAddress},
		{"TelephonyCapability", true},
		{"BasebandVersion", p.BasebandVersion},
		{"BasebandCertId", uint64(baseBasebandCertID)},
		{"BasebandSerialNumber", clone(d.BasebandSerialNumber)},
		{"BasebandKeyHashInformation", map[string]any{
			"AKeyStatus": uint64(2),
			"SKeyStatus": uint64(0),
		}},
		{"BasebandChipID", uint64(baseBasebandChipID)},
		{"BasebandMasterKeyHash", baseBasebandMasterKeyHash},
		{"BasebandRegionSKU", make([]byte, 64)},
		{"BasebandStatus", "BBInfoAvailable"},
		{"BasebandActivationTicketVersion", "V2"},
		{"InternationalMobileEquipmentIdentity", d.IMEI},
		{"InternationalMobileEquipmentIdentity2", d.IMEI2},
		{"MobileEquipmentIdentifier", d.MEID},
		{"MobileSubscriberCountryCode", ""},
		{"MobileSubscriberNetworkCode", ""},
		{"SIMStatus", "kCTSIMSupportSIMStatusNotInserted"},
		{"SIMTrayStatus", "kCTSIMSupportSIMTrayInsertedNoSIM"},
		{"CarrierBundleInfoArray", []any{}},
		{"kCTPostponementStatus", "kCTPostponementStatusActivated"},
		{"kCTPostponementInfoServiceProvisioningState", false},
	}
}

// LockdownValue answers GetValue for one Domain/Key. inSession means a TLS session is active
// (or the connection is RSD lockdown.remote.trusted).
//
// Default domain (""): a key of the §2.3 set always; another §1.2 key only inSession, else
// GetProhibited; DevicePublicKey (PKCS#1 PEM bytes) always; anything else MissingValue.
// key "" returns the whole dictionary as map[string]any. Other domains (§3) need a session
// (GetProhibited otherwise); unknown domains and keys give MissingValue.
// Errors are *LockdownError.
func (d *Device) LockdownValue(domain, key string, inSession bool) (any, error) {
	fail := func(code string) (any, error) {
		return nil, &LockdownError{Domain: domain, Key: key, Code: code}
	}
	if domain == "" {
		switch key {
		case "":
			return ToMap(d.LockdownValues(inSession)), nil
		case "DevicePublicKey":
			return d.DevicePublicKeyPEM(), nil
		}
		v, ok := Lookup(d.fullValues(), key)
		switch {
		case !ok:
			return fail(CodeMissingValue)
		case !inSession && !noSessionKeys[key]:
			return fail(CodeGetProhibited)
		}
		return v, nil
	}
	kvs, ok := domainValues(domain)
	if !ok {
		return fail(CodeMissingValue)
	}
	if !inSession {
		return fail(CodeGetProhibited)
	}
	if key == "" {
		return ToMap(kvs), nil
	}
	v, ok := Lookup(kvs, key)
	if !ok {
		return fail(CodeMissingValue)
	}
	return v, nil
}

// LockdownDomains lists the non-default domains LockdownValue answers (device-profile.md §3).
func LockdownDomains() []string {
	return []string{
		"com.apple.security.mac.amfi",
		"com.apple.mobile.battery",
		"com.apple.international",
		"com.apple.Accessibility",
		"com.apple.mobile.wireless_lockdown",
		"com.apple.mobile.backup",
		"com.apple.disk_usage",
	}
}

// domainValues returns the values of one non-default domain (device-profile.md §3 and §6
// "Other domains"). Values the spec does not fix are plain defaults, marked below.
func domainValues(domain string) ([]KV, bool) {
	switch domain {
	case "com.apple.security.mac.amfi":
		return []KV{{"DeveloperModeStatus", true}}, true
	case "com.apple.mobile.battery":
		return []KV{
			{"BatteryCurrentCapacity", uint64(80)},
			{"BatteryIsCharging", false},
			{"ExternalChargeCapable", true},
			{"ExternalConnected", true},
			{"FullyCharged", false},
			{"GasGaugeCapability", true},
			{"HasBattery", true},
		}, true
	case "com.apple.international":
		return []KV{
			{"Language", "en"},
			{"Locale", "en_US"},
			// The spec elides the lists; a short plausible set.
			{"SupportedLanguages", []any{"en", "en-GB", "fr", "de", "es", "it", "ja", "zh-Hans"}},
			{"SupportedLocales", []any{"en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "ja_JP", "zh_CN"}},
		}, true
	case "com.apple.Accessibility":
		return []KV{
			{"AssistiveTouchEnabledByiTunes", uint64(0)},
			{"VoiceOverTouchEnabledByiTunes", uint64(0)},
			{"InvertDisplayEnabledByiTunes", uint64(0)},
			{"ZoomTouchEnabledByiTunes", uint64(0)},
		}, true
	case "com.apple.mobile.wireless_lockdown":
		// Values not given by the spec; Wi-Fi sync off.
		return []KV{{"EnableWifiConnections", false}, {"EnableWifiDebugging", false}}, true
	case "com.apple.mobile.backup":
		return []KV{{"WillEncrypt", false}}, true
	case "com.apple.disk_usage":
		// Simulated 128 GB device; lockdown integer types UNCONFIRMED (§3).
		const total, system, sysAvail, dataAvail = 128_000_000_000, 12_000_000_000, 2_000_000_000, 64_000_000_000
		return []KV{
			{"TotalDiskCapacity", uint64(total)},
			{"TotalDataCapacity", uint64(total - system)},
			{"TotalDataAvailable", uint64(dataAvail)},
			{"TotalSystemCapacity", uint64(system)},
			{"TotalSystemAvailable", uint64(sysAvail)},
			{"AmountDataAvailable", uint64(dataAvail)},
			{"AmountDataReserved", uint64(0)},
		}, true
	}
	return nil, false
}

// timeZone loads baseTimeZone once (embedded tzdata is the fallback).
var timeZone = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation(baseTimeZone)
	if err != nil {
		return nil
	}
	return loc
})

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// proximityBlob is an opaque ProximitySensorCalibration value (the spec allows any blob).
func proximityBlob() []byte {
	b := make([]byte, 16)
	copy(b, "SIMPROXCAL")
	return b
}
