package profile

import "strings"

// RemoteXPCVersionFlags is the constant RSD property on production iPhones
// (device-profile.md §4 item 4; rsd.md §3.2).
const RemoteXPCVersionFlags uint64 = 0x0100000000000006

// RSDProperties returns the RSD handshake Properties dictionary (rsd.md §3.2 with the
// equalities and constants of device-profile.md §4), ordered as rsd.md lists it. Release
// builds carry no ReleaseType, so 44 keys. XPC integer types are UNCONFIRMED in the spec;
// all integers are uint64 (the type the host side uses for RemoteXPCVersionFlags).
func (d *Device) RSDProperties() []KV {
	p := d.Profile
	return []KV{
		{"AppleInternal", false},
		{"BoardId", p.BoardID},
		{"BootSessionUUID", strings.ToLower(d.BootSessionID)},
		{"BuildVersion", p.BuildVersion},
		{"CPUArchitecture", "arm64e"},
		{"CertificateProductionStatus", true},
		{"CertificateSecurityMode", true},
		{"ChipID", p.ChipID},
		{"DeviceClass", "iPhone"},
		{"DeviceColor", "1"},
		{"DeviceEnclosureColor", "1"},
		{"DeviceSupportsLockdown", true},
		{"EffectiveProductionStatusAp", true},
		{"EffectiveProductionStatusSEP", true},
		{"EffectiveSecurityModeAp", true},
		{"EffectiveSecurityModeSEP", true},
		{"EthernetMacAddress", d.EthernetAddress},
		{"HWModel", p.HardwareModel},
		{"HardwarePlatform", p.HardwarePlatform},
		{"HasSEP", true},
		{"HumanReadableProductVersionString", p.ProductVersion},
		{"Image4CryptoHashMethod", "sha2-384"},
		{"Image4Supported", true},
		{"IsUIBuild", true},
		{"IsVirtualDevice", false},
		{"MobileDeviceMinimumVersion", p.MobileDeviceMinimumVersion},
		{"ModelNumber", p.ModelNumber},
		{"OSInstallEnvironment", false},
		{"OSVersion", p.ProductVersion},
		{"ProductName", "iPhone OS"},
		{"ProductType", p.ProductType},
		{"RegionCode", p.RegionCode()},
		{"RegionInfo", p.RegionInfo},
		{"RemoteXPCVersionFlags", RemoteXPCVersionFlags},
		{"RestoreLongVersion", p.RestoreLongVersion},
		{"SecurityDomain", uint64(1)},
		{"SensitivePropertiesVisible", true},
		{"SerialNumber", d.SerialNumber},
		{"SigningFuse", true},
		{"StoreDemoMode", false},
		{"SupplementalBuildVersion", p.BuildVersion},
		{"ThinningProductType", p.ProductType},
		{"UniqueChipID", d.ECID},
		{"UniqueDeviceID", d.UDID},
	}
}
