package event

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Object keys.
//
// encoding/json matches an object key to a struct field case-insensitively
// (with Unicode folding) and lets the last of duplicate keys win, so
// {"amount_minor":1,"Amount_Minor":2} decodes as 2 while a case-sensitive
// parser reads 1. Every decoder of this package therefore first walks the
// input with a keyChecker, which knows the target type: keys must name fields
// in exactly their case, and no object may hold the same key twice (after
// unescaping). Only then does encoding/json decode, and it can no longer
// choose a field another parser would not.

// Unknown says what a decoder does with an object key that names no field.
type Unknown bool

const (
	// RejectUnknown refuses a key that names no field (also one that
	// differs from a field only in case) with a *ValidationError: the
	// HTTP API, where a misspelt field must not pass unnoticed.
	RejectUnknown Unknown = false
	// IgnoreUnknown passes over such keys: readers of topics and stores,
	// which must accept records written by a newer release (forward
	// compatibility). A key differing from a field only in case is an
	// unknown key too, never that field.
	IgnoreUnknown Unknown = true
)

// Unmarshal decodes exactly one JSON value into v, which must be a
// pointer, as encoding/json does except that keys are exact-case and a
// duplicate key is refused, both with a *ValidationError naming the key
// by its JSON pointer. Unknown keys are refused or ignored as unknown
// says. Type mismatches are a *ValidationError too; anything unparsable
// wraps ErrMalformed.
func Unmarshal(b []byte, v any, unknown Unknown) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("event.Unmarshal: %T is not a non-nil pointer", v)
	}
	return decodeKeysChecked(b, v, rv.Type().Elem(), unknown)
}

func decodeKeysChecked(b []byte, v any, t reflect.Type, unknown Unknown) error {
	kc := keyChecker{b: b, unknown: unknown}
	kc.scan(t)
	switch {
	case kc.syntax:
		// Let encoding/json find and report the syntax error.
		return decodeJSON(b, v, unknown)
	case kc.err != nil:
		return kc.err
	case len(kc.drop) > 0:
		if !json.Valid(b) {
			return decodeJSON(b, v, unknown) // reports the syntax error
		}
		b = kc.without()
	}
	return decodeJSON(b, v, unknown)
}

// keyChecker walks one JSON text. It stops at the first syntax error
// (syntax); otherwise err is the first key problem in document order, and
// drop lists the byte ranges of members to remove before encoding/json
// sees the text: with IgnoreUnknown, those whose key encoding/json would
// match to a field by folding case.
//
// It allocates little: keys are views of b, and the path to the value
// being scanned is a stack of segments that becomes a JSON pointer only
// for an error.
type keyChecker struct {
	b       []byte
	i       int
	unknown Unknown
	syntax  bool
	err     *ValidationError
	drop    [][2]int
	path    []string // keys and array indexes down to the current value
}

func (c *keyChecker) scan(t reflect.Type) {
	c.value(t)
	c.space()
	if c.i != len(c.b) {
		c.syntax = true
	}
}

// fail records a problem with the current path's last key, unless one is
// recorded already.
func (c *keyChecker) fail(format string, args ...any) {
	if c.err != nil {
		return
	}
	var ptr strings.Builder
	for _, seg := range c.path {
		ptr.WriteByte('/')
		ptr.WriteString(escapePointer(seg))
	}
	c.err = &ValidationError{}
	c.err.add(ptr.String(), format, args...)
}

func (c *keyChecker) space() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

// value scans one value at c.i; t is the Go type it decodes into, nil
// when none (an ignored member) or when the type reads it as a whole.
func (c *keyChecker) value(t reflect.Type) {
	c.space()
	if c.i >= len(c.b) {
		c.syntax = true
		return
	}
	t = deref(t)
	switch c.b[c.i] {
	case '{':
		c.object(t)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		c.i++
		c.space()
		if c.i < len(c.b) && c.b[c.i] == ']' {
			c.i++
			return
		}
		for n := 0; !c.syntax; n++ {
			c.path = append(c.path, strconv.Itoa(n))
			c.value(elem)
			c.path = c.path[:len(c.path)-1]
			c.space()
			if c.i >= len(c.b) {
				c.syntax = true
				return
			}
			switch c.b[c.i] {
			case ',':
				c.i++
			case ']':
				c.i++
				return
			default:
				c.syntax = true
			}
		}
	case '"':
		if _, ok := c.str(); !ok {
			c.syntax = true
		}
	default:
		s := bytesString(c.b)
		for _, lit := range [...]string{"true", "false", "null"} {
			if strings.HasPrefix(s[c.i:], lit) {
				c.i += len(lit)
				return
			}
		}
		end, _, ok := scanNumber(s, c.i)
		if !ok {
			c.syntax = true
			return
		}
		c.i = end
	}
}

// object scans an object; t is a struct type whose fields its keys must
// name, or any other type (a map, an ignored value), for which only
// duplicates are checked.
func (c *keyChecker) object(t reflect.Type) {
	var fs *fieldSet
	if t != nil && t.Kind() == reflect.Struct {
		fs = fieldsOf(t) // nil for a type that decodes itself
	}
	var seen uint64 // fields of fs seen, by index
	var buf [8]string
	others := buf[:0]        // other keys seen
	var index map[string]int // others by key, once there are many
	c.i++                    // '{'
	c.space()
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return
	}
	for !c.syntax {
		c.space()
		start := c.i
		key, ok := c.str()
		if !ok {
			c.syntax = true
			return
		}
		c.path = append(c.path, key)
		dup := false
		var ft reflect.Type
		known := false
		if fs != nil {
			if f, ok := fs.byName[key]; ok {
				known, ft = true, f.typ
				if f.index < 64 {
					dup = seen&(1<<f.index) != 0
					seen |= 1 << f.index
				} else {
					dup = slicesContains(others, key)
					others = append(others, key)
				}
			}
		}
		if !known {
			if index != nil {
				_, dup = index[key]
				index[key] = 0
			} else {
				dup = slicesContains(others, key)
				others = append(others, key)
				if len(others) > 16 {
					index = make(map[string]int, 32)
					for _, k := range others {
						index[k] = 0
					}
				}
			}
		}
		if dup {
			c.fail("duplicate key: each key may appear once in an object")
		}
		var folded string
		if fs != nil && !known {
			folded = fs.fold(key)
			if c.unknown == RejectUnknown {
				if folded != "" {
					c.fail("unknown field (keys are case-sensitive: did you mean %q?)", folded)
				} else {
					c.fail("unknown field")
				}
			}
		}
		c.space()
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			c.syntax = true
			return
		}
		c.i++
		c.value(ft)
		c.path = c.path[:len(c.path)-1]
		if c.syntax {
			return
		}
		c.space()
		if c.i >= len(c.b) {
			c.syntax = true
			return
		}
		end := c.i
		last := c.b[c.i] == '}'
		if !last && c.b[c.i] != ',' {
			c.syntax = true
			return
		}
		c.i++
		if folded != "" && c.unknown == IgnoreUnknown {
			// Remove the member with the comma after it, or for the last
			// member the comma before it (a lone member leaves {}).
			if last {
				c.drop = append(c.drop, [2]int{start, end})
			} else {
				c.drop = append(c.drop, [2]int{start, c.i})
			}
		}
		if last {
			return
		}
	}
}

// without returns the text with the members in drop removed.
func (c *keyChecker) without() []byte {
	out := make([]byte, 0, len(c.b))
	at := 0
	for _, d := range c.drop {
		out = append(out, c.b[at:d[0]]...)
		if c.b[d[1]] == '}' {
			// The object's last member: drop the comma before it, if any
			// (it may follow an earlier dropped member).
			out = bytes.TrimRight(out, " \t\n\r")
			out = bytes.TrimSuffix(out, []byte(","))
		}
		at = d[1]
	}
	return append(out, c.b[at:]...)
}

// str scans a string at c.i and returns its value as encoding/json
// decodes it.
func (c *keyChecker) str() (string, bool) {
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return "", false
	}
	start := c.i
	plain := true
	for j := start + 1; j < len(c.b); j++ {
		switch ch := c.b[j]; {
		case ch == '"':
			c.i = j + 1
			raw := c.b[start:c.i]
			if plain {
				return bytesString(raw[1 : len(raw)-1]), true // a view: c.b outlives the check
			}
			// Escapes or non-ASCII: decode exactly as encoding/json
			// does (surrogate pairs, invalid UTF-8 become U+FFFD).
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", false
			}
			return s, true
		case ch == '\\':
			plain = false
			j++ // skip the escaped byte; \uXXXX is checked by json.Unmarshal
		case ch < ' ':
			return "", false
		case ch >= utf8.RuneSelf:
			plain = false
		}
	}
	return "", false
}

func slicesContains(s []string, k string) bool {
	for _, x := range s {
		if x == k {
			return true
		}
	}
	return false
}

func escapePointer(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// opaque reports whether t decodes itself (time.Time), so its keys are
// not fields.
func opaque(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || p.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || p.Implements(textUnmarshalerType)
}

// fieldSet is what encoding/json decodes the keys of an object into for
// one struct type; nil for a type that decodes itself.
type fieldSet struct {
	byName map[string]field
	names  []string
}

type field struct {
	index int
	typ   reflect.Type
}

// fold returns the field name encoding/json would match key to by
// folding case, "" if none.
func (fs *fieldSet) fold(key string) string {
	for _, n := range fs.names {
		if strings.EqualFold(n, key) {
			return n
		}
	}
	return ""
}

var fieldSets sync.Map // reflect.Type → *fieldSet

func fieldsOf(t reflect.Type) *fieldSet {
	if fs, ok := fieldSets.Load(t); ok {
		return fs.(*fieldSet)
	}
	var fs *fieldSet
	if !opaque(t) {
		fs = &fieldSet{byName: map[string]field{}}
		addFields(fs, t)
	}
	v, _ := fieldSets.LoadOrStore(t, fs)
	return v.(*fieldSet)
}

// addFields adds the decodable fields of struct t as encoding/json names
// them: the tag's name, else the Go name; "-" and unexported fields are
// skipped, untagged embedded structs are flattened.
func addFields(fs *fieldSet, t reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			if et := deref(sf.Type); et.Kind() == reflect.Struct {
				addFields(fs, et)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, ok := fs.byName[name]; ok {
			continue
		}
		fs.byName[name] = field{index: len(fs.names), typ: sf.Type}
		fs.names = append(fs.names, name)
	}
}
