package pairrecord

// MaxRemoteRecords bounds how many RemotePairing records ListRemote returns.
const MaxRemoteRecords = 1024

// ListRemote returns the UDIDs that have a RemotePairing record (remote_<UDID>.plist), sorted,
// at most MaxRemoteRecords.
func (s *Store) ListRemote() ([]string, error) { return s.list("remote_", MaxRemoteRecords) }
