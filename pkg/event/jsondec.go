package event

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// The fast transaction decoder.
//
// Every record the scorer reads and every body ingest accepts goes through
// DecodeTransaction, DecodeTransactionString or DecodeTransactionRecord,
// and almost all of them are in one plain form: an object of known keys
// spelled exactly, each once, with string values free of escapes.
// decodeTransactionFast decodes that form directly. It succeeds only where
// the reference path (decodeTransactionRef: the key check of keys.go, then
// encoding/json) would succeed with the same value, and gives up on
// anything else — an error of any kind (a duplicate key, an unknown key
// under RejectUnknown), but also rare valid forms such as escaped strings,
// an unknown key whose value is an object or array, or a top-level null.
// The reference path then decides and reports the error. So the accepted
// inputs, the values and the errors (pointers and detail text) are those
// of the reference; only the common case is fast.
// FuzzDecodeTransactionFast holds it to that.
//
// It reads a string. Its string fields are substrings of b when owned is
// true (DecodeTransactionString: the caller's string is immutable, so
// sharing it is safe and spares an allocation per field) and copies when it
// is false (DecodeTransaction: b views the caller's bytes, which may change).

// decodeTransactionFast decodes b into *t, which must be zero, and reports
// whether it could. When it returns false, *t is garbage.
func decodeTransactionFast(b string, t *Transaction, owned bool, unknown Unknown) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i >= len(b) {
		return false
	}
	// lat and lon are decoded into locals so that both pointers share one
	// allocation; a null makes the pointer nil again.
	var latSet, lonSet bool
	var lat, lon float64
	// seen has bit n set once the key of case n below was read: a second
	// one is a duplicate, which the reference path reports. others holds
	// the unknown keys passed over (IgnoreUnknown), for the same check.
	var seen uint32
	var others [4]string
	nothers := 0
	if b[i] != '}' {
		for {
			key, j, ok := scanPlainString(b, i)
			if !ok {
				return false
			}
			i = skipSpace(b, j)
			if i >= len(b) || b[i] != ':' {
				return false
			}
			i = skipSpace(b, i+1)
			if i >= len(b) {
				return false
			}
			var bit uint32 // 0 for an unknown key
			switch key {
			case "schema":
				bit = 1 << 0
				i, ok = decodeString(b, i, &t.Schema, owned)
			case "transaction_id":
				bit = 1 << 1
				i, ok = decodeString(b, i, &t.TransactionID, owned)
			case "card_id":
				bit = 1 << 2
				i, ok = decodeString(b, i, &t.CardID, owned)
			case "account_id":
				bit = 1 << 3
				i, ok = decodeString(b, i, &t.AccountID, owned)
			case "amount_minor":
				bit = 1 << 4
				i, ok = decodeInt64(b, i, &t.AmountMinor)
			case "currency":
				bit = 1 << 5
				i, ok = decodeString(b, i, &t.Currency, owned)
			case "merchant_id":
				bit = 1 << 6
				i, ok = decodeString(b, i, &t.MerchantID, owned)
			case "merchant_category":
				bit = 1 << 7
				i, ok = decodeString(b, i, &t.MerchantCategory, owned)
			case "merchant_country":
				bit = 1 << 8
				i, ok = decodeString(b, i, &t.MerchantCountry, owned)
			case "channel":
				bit = 1 << 9
				i, ok = decodeString(b, i, &t.Channel, owned)
			case "lat":
				bit = 1 << 10
				i, latSet, ok = decodeFloat(b, i, &lat)
			case "lon":
				bit = 1 << 11
				i, lonSet, ok = decodeFloat(b, i, &lon)
			case "device_id":
				bit = 1 << 12
				i, ok = decodeString(b, i, &t.DeviceID, owned)
			case "ip":
				bit = 1 << 13
				i, ok = decodeString(b, i, &t.IP, owned)
			case "event_time":
				bit = 1 << 14
				i, ok = decodeTime(b, i, &t.EventTime)
			case "ingest_time":
				bit = 1 << 15
				i, ok = decodeTime(b, i, &t.IngestTime)
			default:
				// An unknown key, or a known one in another case, which
				// is unknown too. The reference path refuses it
				// (RejectUnknown) or decides whether its value is one
				// this path can pass over.
				if unknown == RejectUnknown || nothers == len(others) {
					return false
				}
				for _, k := range others[:nothers] {
					if k == key {
						return false // a duplicate
					}
				}
				others[nothers] = key
				nothers++
				i, ok = skipPlainValue(b, i)
			}
			if seen&bit != 0 {
				return false // a duplicate
			}
			seen |= bit
			if !ok {
				return false
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return false
			}
			if b[i] == '}' {
				break
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i+1) != len(b) {
		return false // data after the object
	}
	switch {
	case latSet && lonSet:
		ll := &[2]float64{lat, lon}
		t.Lat, t.Lon = &ll[0], &ll[1]
	case latSet:
		t.Lat = new(lat)
	case lonSet:
		t.Lon = new(lon)
	}
	return true
}

func skipSpace(b string, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanPlainString scans the JSON string starting at b[i] and returns its
// contents and the index after its closing quote. ok is false unless it is
// a complete string whose contents are valid UTF-8 without escapes or
// control characters, which encoding/json takes byte for byte.
func scanPlainString(b string, i int) (s string, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[start:j]
			if !ascii && !utf8.ValidString(s) {
				return "", 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < ' ':
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", 0, false
}

// skipPlainValue passes over a string without escapes, a number or a
// literal at b[i], the values of unknown keys this path can judge as the
// reference path does; anything else makes it give up.
func skipPlainValue(b string, i int) (int, bool) {
	switch b[i] {
	case '"':
		_, end, ok := scanPlainString(b, i)
		return end, ok
	case 't':
		if len(b)-i >= 4 && b[i:i+4] == "true" {
			return i + 4, true
		}
	case 'f':
		if len(b)-i >= 5 && b[i:i+5] == "false" {
			return i + 5, true
		}
	case 'n':
		if isNull(b, i) {
			return i + 4, true
		}
	default:
		end, _, ok := scanNumber(b, i)
		return end, ok
	}
	return 0, false
}

// isNull reports whether b[i:] starts with the literal null. Whether a
// delimiter follows is checked by the caller.
func isNull(b string, i int) bool {
	return len(b)-i >= 4 && b[i:i+4] == "null"
}

// decodeString decodes a string value into *dst; null leaves *dst as it is,
// as encoding/json does. The value is a substring of b when owned is true,
// otherwise a copy.
func decodeString(b string, i int, dst *string, owned bool) (int, bool) {
	if isNull(b, i) {
		return i + 4, true
	}
	s, end, ok := scanPlainString(b, i)
	if !ok {
		return 0, false
	}
	*dst = interned(s, owned)
	return end, true
}

// interned returns s, or the constant equal to it for the schema name and
// the common channels, currencies and countries, so that a decoded value
// holds on to neither a copy nor the input. Any other value is s itself
// when owned is true and a copy otherwise.
func interned(s string, owned bool) string {
	switch len(s) {
	case 2:
		if c, ok := countryNames[s]; ok {
			return c
		}
	case 3:
		if c, ok := currencyNames[s]; ok {
			return c
		}
		if s == ChannelATM {
			return ChannelATM
		}
	default:
		switch s {
		case SchemaTransaction:
			return SchemaTransaction
		case ChannelCardPresent:
			return ChannelCardPresent
		case ChannelEcommerce:
			return ChannelEcommerce
		case ChannelMOTO:
			return ChannelMOTO
		}
	}
	if owned {
		return s
	}
	return strings.Clone(s)
}

var (
	currencyNames = names(currencies)
	countryNames  = names(countries)
)

func names(set map[string]struct{}) map[string]string {
	m := make(map[string]string, len(set))
	for k := range set {
		m[k] = k
	}
	return m
}

// scanNumber scans a JSON number at b[i] and returns the index after it and
// whether it is an integer (no fraction, no exponent). The caller checks
// that a delimiter follows, which rules out forms like 01 or 1.2.3.
func scanNumber(b string, i int) (end int, integer, ok bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j >= len(b):
		return 0, false, false
	case b[j] == '0':
		j++
	case '1' <= b[j] && b[j] <= '9':
		j = skipDigits(b, j+1)
	default:
		return 0, false, false
	}
	integer = true
	if j < len(b) && b[j] == '.' {
		integer = false
		k := skipDigits(b, j+1)
		if k == j+1 {
			return 0, false, false
		}
		j = k
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		integer = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := skipDigits(b, j)
		if k == j {
			return 0, false, false
		}
		j = k
	}
	return j, integer, true
}

func skipDigits(b string, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// decodeInt64 decodes an integer value into *dst; null leaves *dst as it
// is. A fraction, an exponent or an int64 overflow is an error for
// encoding/json, so it gives up.
func decodeInt64(b string, i int, dst *int64) (int, bool) {
	if isNull(b, i) {
		return i + 4, true
	}
	end, integer, ok := scanNumber(b, i)
	if !ok || !integer {
		return 0, false
	}
	n, err := strconv.ParseInt(b[i:end], 10, 64)
	if err != nil {
		return 0, false
	}
	*dst = n
	return end, true
}

// decodeFloat decodes a number into *dst, as strconv.ParseFloat does for
// encoding/json; set is false for null, which makes the pointer nil.
func decodeFloat(b string, i int, dst *float64) (end int, set, ok bool) {
	if isNull(b, i) {
		return i + 4, false, true
	}
	end, _, ok = scanNumber(b, i)
	if !ok {
		return 0, false, false
	}
	f, err := strconv.ParseFloat(b[i:end], 64)
	if err != nil {
		return 0, false, false // out of range: an error for encoding/json
	}
	*dst = f
	return end, true, true
}

// decodeTime decodes a time with time.Time.UnmarshalJSON, as encoding/json
// does, given the raw quoted string; null leaves *dst as it is.
func decodeTime(b string, i int, dst *time.Time) (int, bool) {
	if isNull(b, i) {
		return i + 4, true
	}
	_, end, ok := scanPlainString(b, i)
	if !ok {
		return 0, false
	}
	if err := dst.UnmarshalJSON(stringBytes(b[i:end])); err != nil {
		return 0, false
	}
	return end, true
}

// bytesString views b as a string without copying. The fast decoder reads
// through it and copies whatever it keeps (decodeString with owned false).
func bytesString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// stringBytes views s as bytes without copying, for time.Time.UnmarshalJSON,
// which only reads them and keeps nothing.
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
