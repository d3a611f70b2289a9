package main

import (
	"strings"
	"testing"
)

// TestNetAdminLack reads CAP_NET_ADMIN out of /proc/self/status text.
func TestNetAdminLack(t *testing.T) {
	cases := []struct {
		status string
		ok     bool
	}{
		{"Name:\tiosmuxd\nCapInh:\t0000000000000000\nCapEff:\t0000000000001000\n", true}, // CAP_NET_ADMIN only
		{"CapEff:\t000001ffffffffff\n", true},                                            // root
		{"CapEff:\t0000000000000400\n", false},                                           // CAP_NET_BIND_SERVICE only
		{"CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n", false},                // bounding set is not effective
		{"Name:\tx\n", false},                                                            // no CapEff line
		{"CapEff:\tzz\n", false},                                                         // garbage
	}
	for _, c := range cases {
		lack := netAdminLack(c.status)
		if (lack == "") != c.ok {
			t.Errorf("%q: lack %q, want ok=%v", c.status, lack, c.ok)
		}
		if lack != "" && !strings.Contains(lack, "CAP_NET_ADMIN") {
			t.Errorf("%q: message %q does not name CAP_NET_ADMIN", c.status, lack)
		}
	}
}
