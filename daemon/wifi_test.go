package daemon

import (
	"testing"

	"github.com/iosmux/iosmux/discovery"
	"github.com/iosmux/iosmux/pairrecord"
)

// TestWiFiMatchRecord: an advert's auth tag names the record whose device altIRK made it;
// a wrong tag, another identifier, a missing tag and a record without altIRK match nothing.
func TestWiFiMatchRecord(t *testing.T) {
	store, err := pairrecord.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	irk := []byte("0123456789abcdef")
	for udid, alt := range map[string][]byte{"00008030-000A": irk, "00008030-000B": []byte("fedcba9876543210"), "00008030-000C": nil} {
		r, err := pairrecord.NewRemote("HOST", udid)
		if err != nil {
			t.Fatal(err)
		}
		r.DeviceAltIRK = alt
		if err := store.SaveRemote(udid, r); err != nil {
			t.Fatal(err)
		}
	}
	s := &WiFiSource{Store: store}
	log := discoveryLog(nil)
	tag := discovery.AuthTag(irk, "DEV-ID")
	if got := s.matchRecord("DEV-ID", tag, log); got != "00008030-000A" {
		t.Fatalf("matched %q", got)
	}
	for name, c := range map[string][2]string{
		"wrong tag": {"DEV-ID", "AAAAAAAA"}, "other identifier": {"DEV-ID2", tag},
		"no tag": {"DEV-ID", ""}, "no identifier": {"", tag},
	} {
		if got := s.matchRecord(c[0], c[1], log); got != "" {
			t.Errorf("%s matched %q", name, got)
		}
	}
	// A record written later (paired meanwhile) is seen: the cache follows the file.
	r, _ := pairrecord.NewRemote("HOST", "00008030-000C")
	r.DeviceAltIRK = []byte("CCCCCCCCCCCCCCCC")
	if err := store.SaveRemote("00008030-000C", r); err != nil {
		t.Fatal(err)
	}
	if got := s.matchRecord("X", discovery.AuthTag(r.DeviceAltIRK, "X"), log); got != "00008030-000C" {
		t.Fatalf("rewritten record: matched %q", got)
	}
}
