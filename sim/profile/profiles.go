package profile

import (
	"fmt"
	"strings"
)

// Profile is one consistent simulated device: model, OS build and the canonical identity of
// device-profile.md §6. Per-device instances come from Device.
type Profile struct {
	Name    string   // selection name, e.g. "iphone12-ios17"
	Aliases []string // other accepted names (the §6 column letter)
	Model   string   // marketing name, e.g. "iPhone 12"

	// Hardware (device-profile.md §5.2).
	ProductType      string // also RSD ThinningProductType
	HardwareModel    string // also RSD HWModel
	HardwarePlatform string // "t%x" of ChipID
	ChipID           uint64
	BoardID          uint64 // lockdown/RSD key "BoardId"

	// OS (device-profile.md §5.3).
	ProductVersion             string // also RSD OSVersion, HumanReadableProductVersionString
	BuildVersion               string // also RSD SupplementalBuildVersion
	RestoreLongVersion         string // RSD only
	MobileDeviceMinimumVersion string // RSD only
	BasebandVersion            string
	FirmwareVersion            string

	// Region / model number.
	ModelNumber string
	RegionInfo  string // RSD RegionCode is RegionInfo without "/A"

	// Canonical identity: the §6 values, used by Device("").
	Canonical Identity
}

// Identity is the per-device part of a profile (device-profile.md §6 rows that differ per device).
type Identity struct {
	ECID                      uint64 // UniqueChipID = DieID
	SerialNumber              string
	MLBSerialNumber           string
	WirelessBoardSerialNumber string
	DeviceName                string
	WiFiAddress               string
	BluetoothAddress          string
	EthernetAddress           string // also RSD EthernetMacAddress
	IMEI                      string // InternationalMobileEquipmentIdentity
	IMEI2                     string // InternationalMobileEquipmentIdentity2
	MEID                      string // MobileEquipmentIdentifier = IMEI[:14]
	BasebandSerialNumber      []byte // = ChipSerialNo
}

// Values shared by all three profiles (device-profile.md §6 "all" column).
const (
	baseTimeZone       = "America/New_York"
	baseBasebandCertID = 3095201109
	baseBasebandChipID = 938209
	// BasebandMasterKeyHash is identical on different devices (§1.2 c); D1's value.
	baseBasebandMasterKeyHash = "1B41607650EBF11C6B39F41CB267DC64C121A9BCF44DBA5D28F55ACC86361BBA366554CD57B4C466055803E1EF81C870"
)

var profiles = []*Profile{
	{
		Name:                       "iphone12-ios17",
		Aliases:                    []string{"a"},
		Model:                      "iPhone 12",
		ProductType:                "iPhone13,2",
		HardwareModel:              "D53gAP",
		HardwarePlatform:           "t8101",
		ChipID:                     33025,
		BoardID:                    12,
		ProductVersion:             "17.5.1",
		BuildVersion:               "21F90",
		RestoreLongVersion:         "21.6.90.0.0,0",
		MobileDeviceMinimumVersion: "1600",
		BasebandVersion:            "4.50.06",
		FirmwareVersion:            "iBoot-10151.122.1",
		ModelNumber:                "MGH93",
		RegionInfo:                 "LL/A",
		Canonical: Identity{
			ECID:                      0x000A1B2C3D4E5F01,
			SerialNumber:              "SIMULATED01",
			MLBSerialNumber:           "SIMULATEDMLB0001",
			WirelessBoardSerialNumber: "SIMWBSN001",
			DeviceName:                "Simulated iPhone 12",
			WiFiAddress:               "02:53:49:4d:01:01",
			BluetoothAddress:          "02:53:49:4d:01:02",
			EthernetAddress:           "02:53:49:4d:01:03",
			IMEI:                      "359999000000018",
			IMEI2:                     "359999000000026",
			MEID:                      "35999900000001",
			BasebandSerialNumber:      []byte{'S', 'I', 'M', 1},
		},
	},
	{
		Name:                       "iphone15pro-ios18",
		Aliases:                    []string{"b"},
		Model:                      "iPhone 15 Pro",
		ProductType:                "iPhone16,1",
		HardwareModel:              "D83AP",
		HardwarePlatform:           "t8130",
		ChipID:                     33072,
		BoardID:                    4,
		ProductVersion:             "18.5",
		BuildVersion:               "22F76",
		RestoreLongVersion:         "22.6.76.0.0,0",
		MobileDeviceMinimumVersion: "1742",
		BasebandVersion:            "2.60.02",
		FirmwareVersion:            "iBoot-11881.122.1",
		ModelNumber:                "MTUV3",
		RegionInfo:                 "LL/A",
		Canonical: Identity{
			ECID:                      0x000A1B2C3D4E5F02,
			SerialNumber:              "SIMULATED02",
			MLBSerialNumber:           "SIMULATEDMLB0002",
			WirelessBoardSerialNumber: "SIMWBSN002",
			DeviceName:                "Simulated iPhone 15 Pro",
			WiFiAddress:               "02:53:49:4d:02:01",
			BluetoothAddress:          "02:53:49:4d:02:02",
			EthernetAddress:           "02:53:49:4d:02:03",
			IMEI:                      "359999000000117",
			IMEI2:                     "359999000000125",
			MEID:                      "35999900000011",
			BasebandSerialNumber:      []byte{'S', 'I', 'M', 2},
		},
	},
	{
		Name:                       "iphone16-ios26",
		Aliases:                    []string{"c"},
		Model:                      "iPhone 16",
		ProductType:                "iPhone17,3",
		HardwareModel:              "D47AP",
		HardwarePlatform:           "t8140",
		ChipID:                     33088,
		BoardID:                    8,
		ProductVersion:             "26.5",
		BuildVersion:               "23F77",
		RestoreLongVersion:         "23.6.77.0.0,0",
		MobileDeviceMinimumVersion: "1742",
		BasebandVersion:            "2.60.00",
		FirmwareVersion:            "iBoot-13822.122.1",
		ModelNumber:                "MYE73",
		RegionInfo:                 "LL/A",
		Canonical: Identity{
			ECID:                      0x000A1B2C3D4E5F03,
			SerialNumber:              "SIMULATED03",
			MLBSerialNumber:           "SIMULATEDMLB0003",
			WirelessBoardSerialNumber: "SIMWBSN003",
			DeviceName:                "Simulated iPhone 16",
			WiFiAddress:               "02:53:49:4d:03:01",
			BluetoothAddress:          "02:53:49:4d:03:02",
			EthernetAddress:           "02:53:49:4d:03:03",
			IMEI:                      "359999000000216",
			IMEI2:                     "359999000000224",
			MEID:                      "35999900000021",
			BasebandSerialNumber:      []byte{'S', 'I', 'M', 3},
		},
	},
}

// Names returns the available profile names, default first.
func Names() []string {
	out := make([]string, len(profiles))
	for i, p := range profiles {
		out[i] = p.Name
	}
	return out
}

// ByName returns the profile called name (case-insensitive; the §6 letters "a", "b", "c"
// are accepted too). "" selects the default. The returned profile is shared: do not modify it.
func ByName(name string) (*Profile, error) {
	if name == "" {
		return Default(), nil
	}
	for _, p := range profiles {
		if strings.EqualFold(p.Name, name) {
			return p, nil
		}
		for _, a := range p.Aliases {
			if strings.EqualFold(a, name) {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("profile: unknown profile %q (have %s)", name, strings.Join(Names(), ", "))
}

// Default returns the default profile (profile A: iPhone 12, iOS 17.5.1).
func Default() *Profile { return profiles[0] }

// RegionCode is RegionInfo without the "/A" suffix (RSD RegionCode, device-profile.md §4).
func (p *Profile) RegionCode() string {
	code, _, _ := strings.Cut(p.RegionInfo, "/")
	return code
}
