package sim

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/iosmux/iosmux/discovery"
)

// MDNSOptions says what a simulated phone advertises.
type MDNSOptions struct {
	// RemotedPort is the untrusted RSD's port to advertise as _remoted._tcp (0: none).
	RemotedPort uint16
	// RemotePairingPort is the RPPairing port to advertise as _remotepairing._tcp (0: none).
	RemotePairingPort uint16
	// AuthTag replaces the right auth tag in the _remotepairing._tcp TXT (tests of a wrong one).
	AuthTag string
	// ManualPairingPort is the RPPairing port to advertise as _remotepairing-manual-pairing._tcp
	// (a device waiting to be paired with a PIN, as an Apple TV in pairing mode; 0: none).
	ManualPairingPort uint16
}

// The _remoted._tcp TXT and instance name of a real phone are UNCONFIRMED (spec discovery.md
// §3.2: no client reads them); the simulator advertises its UDID as the instance and no TXT.

// RemotePairingAltIRK is the device's 16-byte altIRK: what its pair-setup M6 info gives the
// host, and the key of its _remotepairing._tcp auth tag.
func (d *Device) RemotePairingAltIRK() []byte {
	v, _ := d.remotePairingState().id.Info.Get("altIRK")
	b, _ := v.([]byte)
	return b
}

// MDNSAdverts are the services the phone advertises with o.
func (d *Device) MDNSAdverts(o MDNSOptions) []discovery.Advert {
	var out []discovery.Advert
	if o.RemotedPort != 0 {
		out = append(out, discovery.Advert{Type: discovery.TypeRemoted, Instance: d.UDID, Port: o.RemotedPort})
	}
	if o.RemotePairingPort != 0 {
		id := d.RemotePairingIdentifier()
		tag := o.AuthTag
		if tag == "" {
			tag = discovery.AuthTag(d.RemotePairingAltIRK(), id)
		}
		// TXT keys read by clients (spec §4): identifier, authTag, model, ver; the full set a
		// device sends is UNCONFIRMED. The instance names the port, so two listeners of one
		// simulated phone are two services.
		out = append(out, discovery.Advert{Type: discovery.TypeRemotePairing,
			Instance: fmt.Sprintf("%s-%d", d.DeviceName, o.RemotePairingPort), Port: o.RemotePairingPort,
			TXT: []string{"identifier=" + id, "authTag=" + tag, "model=" + d.ProductType, "ver=" + d.ProductVersion}})
	}
	if o.ManualPairingPort != 0 {
		// TXT name and identifier are what clients read (spec §5); other keys UNCONFIRMED.
		out = append(out, discovery.Advert{Type: discovery.TypeManualPairing,
			Instance: fmt.Sprintf("%s-%d", d.DeviceName, o.ManualPairingPort), Port: o.ManualPairingPort,
			TXT: []string{"name=" + d.DeviceName, "identifier=" + d.RemotePairingIdentifier(), "model=" + d.ProductType}})
	}
	return out
}

// NewMDNS makes the responder advertising the phone on iface; it opens its sockets now (in the
// caller's network namespace). Run serves it.
func (d *Device) NewMDNS(ctx context.Context, iface string, o MDNSOptions, log *slog.Logger) (*discovery.Responder, error) {
	ads := d.MDNSAdverts(o)
	if len(ads) == 0 {
		return nil, fmt.Errorf("sim: nothing to advertise over mDNS")
	}
	return discovery.NewResponder(ctx, iface, "iosmux-sim-"+d.UDID, ads, log)
}
