package api

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"

	"github.com/iosmux/iosmux/xpc"
)

// xpcJSON renders an XPC value as typed JSON (inject/CONTRACT.md §3): {"type": T, "value": V}
// for every value, so a reader can rebuild the exact XPC object. Dictionaries keep wire order.
func xpcJSON(v xpc.Value) json.RawMessage { return appendXPC(nil, v) }

func appendTyped(b []byte, typ string, value []byte) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","value":`...)
	b = append(b, value...)
	return append(b, '}')
}

func appendXPC(b []byte, v xpc.Value) []byte {
	switch x := v.(type) {
	case nil, xpc.Null:
		return appendTyped(b, "null", []byte("null"))
	case bool:
		return appendTyped(b, "bool", strconv.AppendBool(nil, x))
	case int64:
		return appendTyped(b, "int64", strconv.AppendInt(nil, x, 10))
	case uint64:
		return appendTyped(b, "uint64", strconv.AppendUint(nil, x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return appendTyped(b, "double", jsonString(strconv.FormatFloat(x, 'g', -1, 64)))
		}
		return appendTyped(b, "double", strconv.AppendFloat(nil, x, 'g', -1, 64))
	case xpc.Date:
		return appendTyped(b, "date", strconv.AppendInt(nil, int64(x), 10))
	case []byte:
		return appendTyped(b, "data", jsonString(base64.StdEncoding.EncodeToString(x)))
	case string:
		return appendTyped(b, "string", jsonString(x))
	case xpc.UUID:
		return appendTyped(b, "uuid", jsonString(x.String()))
	case []xpc.Value:
		arr := []byte{'['}
		for i, e := range x {
			if i > 0 {
				arr = append(arr, ',')
			}
			arr = appendXPC(arr, e)
		}
		return appendTyped(b, "array", append(arr, ']'))
	case *xpc.Dict:
		obj := []byte{'{'}
		for i, e := range x.Entries {
			if i > 0 {
				obj = append(obj, ',')
			}
			obj = append(obj, jsonString(e.Key)...)
			obj = append(obj, ':')
			obj = appendXPC(obj, e.Value)
		}
		return appendTyped(b, "dictionary", append(obj, '}'))
	case *xpc.FileTransfer:
		b = append(b, `{"type":"fileTransfer","id":`...)
		b = strconv.AppendUint(b, x.ID, 10)
		b = append(b, `,"value":`...)
		b = appendXPC(b, x.Value)
		return append(b, '}')
	case *xpc.Opaque:
		b = append(b, `{"type":"opaque","xpcType":`...)
		b = strconv.AppendUint(b, uint64(x.Type), 10)
		b = append(b, `,"rest":`...)
		b = strconv.AppendUint(b, uint64(x.Rest), 10)
		b = append(b, `,"value":`...)
		b = append(b, jsonString(base64.StdEncoding.EncodeToString(x.Body))...)
		return append(b, '}')
	default:
		return appendTyped(b, "null", []byte("null")) // not an XPC value: cannot come from the codec
	}
}

// jsonString is s as a JSON string literal (invalid UTF-8 becomes U+FFFD, as encoding/json does).
func jsonString(s string) []byte {
	out, _ := json.Marshal(s)
	return out
}
