package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// pyDumps formats ordered key/value pairs as Python's json.dumps does by default:
// ", " and ": " separators and ASCII-only strings (tunneld-api.md §1).
func pyDumps(kv ...any) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pyString(kv[i].(string)))
		b.WriteString(": ")
		switch v := kv[i+1].(type) {
		case string:
			b.WriteString(pyString(v))
		case bool:
			fmt.Fprint(&b, v)
		case int:
			fmt.Fprint(&b, v)
		default:
			j, _ := json.Marshal(v)
			b.Write(j)
		}
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// pyString quotes s with Python's ensure_ascii escaping.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || (r >= 0x7f && r < 0x10000) || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r >= 0x10000:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
