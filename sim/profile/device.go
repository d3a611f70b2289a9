package profile

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Device is one simulated device: a profile plus a per-device identity. Fields are fixed
// after creation; the methods are safe for concurrent use.
type Device struct {
	Profile *Profile

	UDID           string // "%08X-%016X" of ChipID and ECID (device-profile.md §5.1)
	ECID           uint64 // UniqueChipID = DieID
	ProductType    string
	ProductVersion string
	BuildVersion   string
	Identity

	// BootSessionID is a fresh upper-case UUID per Device (a "simulated boot"); RSD
	// BootSessionUUID is its lower-case form.
	BootSessionID string

	// Now supplies the clock for TimeIntervalSince1970 / TimeZoneOffsetFromUTC; nil means
	// time.Now.
	Now func() time.Time

	key *keyHolder
}

// Device returns a per-device instance of p. seed selects the identity:
//   - "" gives the canonical §6 identity of the profile (UDID 0000xxxx-000A1B2C3D4E5F0n);
//   - a UDID of this profile's chip ("%08X-%016X" or the dash-less form, any case) is used
//     as is: the ECID is taken from it (UDID override);
//   - anything else (an index, a name, a foreign UDID) derives ECID, serials, MACs, IMEIs,
//     baseband serial and DeviceName deterministically from SHA-256(profile name, seed).
//
// The same (profile, seed) always yields the same identity and device key; BootSessionID
// is new for every call.
func (p *Profile) Device(seed string) *Device {
	var id Identity
	switch ecid, ok := p.parseUDID(seed); {
	case seed == "":
		id = p.Canonical
		id.BasebandSerialNumber = append([]byte(nil), id.BasebandSerialNumber...)
	case ok:
		id = p.deriveIdentity(seed)
		id.ECID = ecid
	default:
		id = p.deriveIdentity(seed)
	}
	d := &Device{
		Profile:        p,
		UDID:           FormatUDID(p.ChipID, id.ECID),
		ECID:           id.ECID,
		ProductType:    p.ProductType,
		ProductVersion: p.ProductVersion,
		BuildVersion:   p.BuildVersion,
		Identity:       id,
		BootSessionID:  newUUID(),
	}
	d.key = sharedKey(p.Name + "\x00" + d.UDID)
	return d
}

// FormatUDID returns the A12+ UDID: 8 upper-case hex digits of chipID, "-", 16 of ecid.
func FormatUDID(chipID, ecid uint64) string {
	return fmt.Sprintf("%08X-%016X", chipID, ecid)
}

// parseUDID reports the ECID of s if s is a UDID of p's chip (with or without the dash).
func (p *Profile) parseUDID(s string) (uint64, bool) {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 24 || (len(s) != 24 && (len(s) != 25 || s[8] != '-')) {
		return 0, false
	}
	chip, err1 := strconv.ParseUint(h[:8], 16, 64)
	ecid, err2 := strconv.ParseUint(h[8:], 16, 64)
	if err1 != nil || err2 != nil || chip != p.ChipID || ecid == 0 {
		return 0, false
	}
	return ecid, true
}

// deriveIdentity builds a distinct, stable identity from seed in the fake value families of
// device-profile.md §5.1 ("SIM…" serials, 02:53:49:… MACs, 35999900… Luhn-valid IMEIs).
func (p *Profile) deriveIdentity(seed string) Identity {
	h := sha256.Sum256([]byte("iosmux/sim/profile/identity\x00" + p.Name + "\x00" + seed))
	u := func(i int) uint64 { return binary.BigEndian.Uint64(h[i : i+8]) }

	// ECID in [2^48, 2^52): an A12+-sized plain integer, < 2^53 for JavaScript clients.
	ecid := u(0)&(1<<52-1) | 1<<48
	hex := strings.ToUpper(fmt.Sprintf("%x", h[8:24]))
	mac := func(k byte) string {
		return fmt.Sprintf("02:53:49:%02x:%02x:%02x", h[24], h[25], h[26]&0xFC|k)
	}
	// IMEI serial: even 6-digit number; IMEI2 uses serial+1 (as in the §6 profiles).
	serial := 100000 + (u(8)%400000)*2
	imei := luhnComplete(fmt.Sprintf("35999900%06d", serial))
	imei2 := luhnComplete(fmt.Sprintf("35999900%06d", serial+1))
	return Identity{
		ECID:                      ecid,
		SerialNumber:              "SIM" + hex[:8],
		MLBSerialNumber:           "SIMMLB" + hex[8:18],
		WirelessBoardSerialNumber: "SIMWB" + hex[18:23],
		DeviceName:                fmt.Sprintf("%s %04X", p.Canonical.DeviceName, ecid&0xFFFF),
		WiFiAddress:               mac(1),
		BluetoothAddress:          mac(2),
		EthernetAddress:           mac(3),
		IMEI:                      imei,
		IMEI2:                     imei2,
		MEID:                      imei[:14],
		BasebandSerialNumber:      []byte{h[27], h[28], h[29], h[30]},
	}
}

// luhnComplete appends the Luhn check digit to a string of decimal digits.
func luhnComplete(digits string) string {
	sum := 0
	// Walking right to left, the digit next to the (future) check digit is doubled.
	for i := len(digits) - 1; i >= 0; i-- {
		v := int(digits[i] - '0')
		if (len(digits)-1-i)%2 == 0 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return digits + strconv.Itoa((10-sum%10)%10)
}

// newUUID returns a random version-4 UUID in upper case.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

func (d *Device) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// PrivateKey returns the device's RSA-2048 key (its public half is DevicePublicKey). It is
// derived deterministically from the profile and UDID, so it is stable across runs; it is
// computed on first use (tens of milliseconds) and cached. A simulator key: no secrecy value.
func (d *Device) PrivateKey() *rsa.PrivateKey { return d.key.get() }

// DevicePublicKeyPEM returns the public key as PKCS#1 PEM ("-----BEGIN RSA PUBLIC KEY-----"),
// the form lockdown DevicePublicKey carries (device-profile.md §0 rule 4).
func (d *Device) DevicePublicKeyPEM() []byte { return d.key.publicPEM() }
