// Package profile holds the identity of a simulated iPhone: the three consistent profiles of
// device-profile.md §6, the per-device identity derived from a seed (§5.1), the lockdown
// GetValue dictionaries (§1, §2, §3) and the RSD handshake Properties and Services
// (rsd.md §3, device-profile.md §4).
//
// Values are Go natives with the exact types the wire needs: string, bool, uint64 (plist
// <integer> / XPC uint64), int64 (XPC int64), float64 (plist <real>), []byte (data),
// []any (array) and, for dictionaries, map[string]any (lockdown, via howett.net/plist) or
// []KV (RSD, ordered for the XPC encoder).
package profile

// KV is one ordered key/value; values are Go natives with exact types.
type KV struct {
	Key   string
	Value any
}

// Lookup returns the value of key in kvs.
func Lookup(kvs []KV, key string) (any, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Keys returns the keys of kvs in order.
func Keys(kvs []KV) []string {
	out := make([]string, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.Key
	}
	return out
}

// ToMap converts kvs into a map for plist encoding. Nested []KV values (also inside []any)
// become nested maps; everything else is kept as is.
func ToMap(kvs []KV) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = toPlist(kv.Value)
	}
	return m
}

func toPlist(v any) any {
	switch t := v.(type) {
	case []KV:
		return ToMap(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = toPlist(e)
		}
		return out
	default:
		return v
	}
}
