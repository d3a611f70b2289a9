package inject

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/iosmux/iosmux/xpc"
)

// decodeXPC reads contract §3's typed JSON back into an XPC value, keeping dictionary order,
// so a test can compare the inject document with what the RSD endpoint itself serves.
func decodeXPC(raw json.RawMessage) (xpc.Value, error) {
	var v struct {
		Type    string          `json:"type"`
		Value   json.RawMessage `json:"value"`
		ID      uint64          `json:"id"`
		XPCType uint32          `json:"xpcType"`
		Rest    uint32          `json:"rest"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch v.Type {
	case "null":
		return xpc.Null{}, nil
	case "bool":
		var b bool
		return b, json.Unmarshal(v.Value, &b)
	case "int64":
		return strconv.ParseInt(string(v.Value), 10, 64)
	case "uint64":
		return strconv.ParseUint(string(v.Value), 10, 64)
	case "double":
		var f float64
		return f, json.Unmarshal(v.Value, &f)
	case "date":
		n, err := strconv.ParseInt(string(v.Value), 10, 64)
		return xpc.Date(n), err
	case "data", "string", "uuid":
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, err
		}
		switch v.Type {
		case "data":
			return base64.StdEncoding.DecodeString(s)
		case "uuid":
			return xpc.ParseUUID(s)
		}
		return s, nil
	case "array":
		var items []json.RawMessage
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, err
		}
		out := make([]xpc.Value, 0, len(items))
		for _, it := range items {
			e, err := decodeXPC(it)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case "dictionary":
		dec := json.NewDecoder(bytes.NewReader(v.Value))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return nil, fmt.Errorf("dictionary value is not an object")
		}
		d := &xpc.Dict{Entries: []xpc.Entry{}}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			var ev json.RawMessage
			if err := dec.Decode(&ev); err != nil {
				return nil, err
			}
			e, err := decodeXPC(ev)
			if err != nil {
				return nil, err
			}
			d.Entries = append(d.Entries, xpc.Entry{Key: tok.(string), Value: e})
		}
		return d, nil
	case "fileTransfer":
		e, err := decodeXPC(v.Value)
		return &xpc.FileTransfer{ID: v.ID, Value: e}, err
	case "opaque":
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return nil, err
		}
		body, err := base64.StdEncoding.DecodeString(s)
		return &xpc.Opaque{Type: xpc.Type(v.XPCType), Body: body, Rest: v.Rest}, err
	}
	return nil, fmt.Errorf("unknown type %q", v.Type)
}
