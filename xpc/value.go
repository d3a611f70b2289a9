package xpc

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Type is an XPC object type code (remotexpc.md §5.1).
type Type uint32

// Every type code of remotexpc.md §5.1.
const (
	TypeNull            Type = 0x00001000
	TypeBool            Type = 0x00002000
	TypeInt64           Type = 0x00003000
	TypeUint64          Type = 0x00004000
	TypeDouble          Type = 0x00005000
	TypePointer         Type = 0x00006000
	TypeDate            Type = 0x00007000
	TypeData            Type = 0x00008000
	TypeString          Type = 0x00009000
	TypeUUID            Type = 0x0000A000
	TypeFD              Type = 0x0000B000
	TypeShmem           Type = 0x0000C000
	TypeMachSend        Type = 0x0000D000
	TypeArray           Type = 0x0000E000
	TypeDictionary      Type = 0x0000F000
	TypeError           Type = 0x00010000
	TypeConnection      Type = 0x00011000
	TypeEndpoint        Type = 0x00012000
	TypeSerializer      Type = 0x00013000
	TypePipe            Type = 0x00014000
	TypeMachRecv        Type = 0x00015000
	TypeBundle          Type = 0x00016000
	TypeService         Type = 0x00017000
	TypeServiceInstance Type = 0x00018000
	TypeActivity        Type = 0x00019000
	TypeFileTransfer    Type = 0x0001A000
)

// Fixed body sizes of the types pmd3 alone describes. UNCONFIRMED (remotexpc.md §5.1): no
// implementation sends them over RemoteXPC; they decode as Opaque of this many bytes.
const (
	PointerBodySize = 0 // pmd3: "no payload"
	FDBodySize      = 4 // pmd3: u32
	ShmemBodySize   = 8 // pmd3: u32 length + u32 unknown
)

// Value is one XPC object. Its dynamic type is one of: Null, bool, int64, uint64, float64,
// Date, []byte, string, UUID, []Value, *Dict, *FileTransfer, *Opaque.
type Value = any

// Null is the XPC null object.
type Null struct{}

// Date is an XPC date: nanoseconds since the Unix epoch.
type Date int64

// UUID is an XPC uuid: 16 bytes in RFC 4122 order.
type UUID [16]byte

// String formats u as lower-case 8-4-4-4-12 hex.
func (u UUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ParseUUID parses the 8-4-4-4-12 hex form, either case.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return u, fmt.Errorf("xpc: bad uuid %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("xpc: bad uuid %q", s)
	}
	return u, nil
}

// FileTransfer announces a file sent on a side stream (remotexpc.md §8.2).
type FileTransfer struct {
	ID    uint64
	Value Value // a *Dict {"s": uint64 size} in every known use
}

// Size returns the transfer size from the {"s": size} dictionary.
func (f *FileTransfer) Size() (uint64, bool) {
	d, ok := f.Value.(*Dict)
	if !ok {
		return 0, false
	}
	return d.Uint64("s")
}

// Opaque is an object whose type this codec cannot decode; it re-encodes byte for byte.
// A type of unknown length swallows the rest of its container: Body then holds every later
// sibling's bytes too, and Rest counts those siblings so the container's count stays exact.
type Opaque struct {
	Type Type
	Body []byte
	Rest uint32
}

// Entry is one dictionary key and its value.
type Entry struct {
	Key   string
	Value Value
}

// Dict is an XPC dictionary; it keeps the wire order of its entries.
type Dict struct {
	Entries []Entry
}

// NewDict builds a dictionary from alternating keys and values.
func NewDict(kv ...any) *Dict {
	d := &Dict{Entries: make([]Entry, 0, len(kv)/2)}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, Entry{Key: kv[i].(string), Value: kv[i+1]})
	}
	return d
}

// Len is the number of entries.
func (d *Dict) Len() int {
	if d == nil {
		return 0
	}
	return len(d.Entries)
}

// Get returns the first value stored under key.
func (d *Dict) Get(key string) (Value, bool) {
	if d == nil {
		return nil, false
	}
	for _, e := range d.Entries {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// Set replaces the first value under key, or appends a new entry.
func (d *Dict) Set(key string, v Value) {
	for i := range d.Entries {
		if d.Entries[i].Key == key {
			d.Entries[i].Value = v
			return
		}
	}
	d.Entries = append(d.Entries, Entry{Key: key, Value: v})
}

// String returns the string under key.
func (d *Dict) String(key string) (string, bool) {
	v, _ := d.Get(key)
	s, ok := v.(string)
	return s, ok
}

// Uint64 returns the uint64 under key.
func (d *Dict) Uint64(key string) (uint64, bool) {
	v, _ := d.Get(key)
	u, ok := v.(uint64)
	return u, ok
}

// Int64 returns the int64 under key.
func (d *Dict) Int64(key string) (int64, bool) {
	v, _ := d.Get(key)
	i, ok := v.(int64)
	return i, ok
}

// Bool returns the bool under key.
func (d *Dict) Bool(key string) (bool, bool) {
	v, _ := d.Get(key)
	b, ok := v.(bool)
	return b, ok
}

// Dict returns the dictionary under key.
func (d *Dict) Dict(key string) (*Dict, bool) {
	v, _ := d.Get(key)
	c, ok := v.(*Dict)
	return c, ok && c != nil
}

// Integer returns the value under key as an int64 whether it is stored as int64 or uint64.
func (d *Dict) Integer(key string) (int64, bool) {
	v, _ := d.Get(key)
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), n <= 1<<63-1
	}
	return 0, false
}
