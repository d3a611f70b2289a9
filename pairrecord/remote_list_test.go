package pairrecord

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestListRemote lists RemotePairing records only: not lockdown records, not other files.
func TestListRemote(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, udid := range []string{"00008030-000A", "00008101-000B"} {
		r, err := NewRemote("HOST-ID", udid)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SaveRemote(udid, r); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(s.Dir(), "00008030-000C.plist"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(s.Dir(), "remote_../x.plist"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(s.Dir(), "remote_notes.txt"), []byte("x"), 0o600)
	got, err := s.ListRemote()
	if err != nil || !slices.Equal(got, []string{"00008030-000A", "00008101-000B"}) {
		t.Fatalf("ListRemote = %v, %v", got, err)
	}
}
