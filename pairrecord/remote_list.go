package pairrecord

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// MaxRemoteRecords bounds how many RemotePairing records ListRemote returns.
const MaxRemoteRecords = 1024

// ListRemote returns the UDIDs that have a RemotePairing record (remote_<UDID>.plist), sorted,
// at most MaxRemoteRecords.
func (s *Store) ListRemote() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: store: %w", err)
	}
	var out []string
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), "remote_")
		if !ok {
			continue
		}
		udid, ok := strings.CutSuffix(name, ".plist")
		if ok && e.Type().IsRegular() && ValidUDID(udid) {
			out = append(out, udid)
			if len(out) == MaxRemoteRecords {
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
