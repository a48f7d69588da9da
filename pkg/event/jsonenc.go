package event

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Hand-written encoders for the records the pipeline writes per event.
//
// They produce exactly the bytes encoding/json produces for the same value
// (field order, omitempty and omitzero, float and string formatting, times
// through time.Time's RFC 3339 form), without reflection and with a single
// growing buffer. The differential fuzz tests in jsonenc_test.go hold them to
// that against encoding/json.
//
// On any value encoding/json refuses (a NaN or infinite float, a time whose
// year is outside 0–9999) they hand the value to encoding/json, so the error
// is exactly the one json.Marshal returns.

// AppendJSON appends the JSON encoding of t to dst, byte for byte what
// json.Marshal(t) returns. Unlike Encode it does not set the schema.
func (t Transaction) AppendJSON(dst []byte) ([]byte, error) {
	out, ok := appendTransaction(dst, &t)
	if !ok {
		return appendMarshal(dst, t)
	}
	return out, nil
}

// AppendJSON appends the JSON encoding of s to dst, byte for byte what
// json.Marshal(s) returns. Unlike Encode it neither sets the schema nor turns
// nil reasons into an empty list.
func (s Scored) AppendJSON(dst []byte) ([]byte, error) {
	out, ok := appendScored(dst, &s)
	if !ok {
		return appendMarshal(dst, s)
	}
	return out, nil
}

// AppendJSON appends the JSON encoding of s to dst, byte for byte what
// json.Marshal(s) returns. Unlike Encode it does not set the schema.
func (s Stats) AppendJSON(dst []byte) ([]byte, error) {
	out, ok := appendStats(dst, &s)
	if !ok {
		return appendMarshal(dst, s)
	}
	return out, nil
}

// appendMarshal is the slow path for values the fast encoders refuse:
// encoding/json decides, and reports its own error.
func appendMarshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func appendTransaction(b []byte, t *Transaction) ([]byte, bool) {
	ok := true
	b = append(b, '{')
	if t.Schema != "" {
		b = append(b, `"schema":`...)
		b = appendString(b, t.Schema)
		b = append(b, ',')
	}
	b = append(b, `"transaction_id":`...)
	b = appendString(b, t.TransactionID)
	b = append(b, `,"card_id":`...)
	b = appendString(b, t.CardID)
	if t.AccountID != "" {
		b = append(b, `,"account_id":`...)
		b = appendString(b, t.AccountID)
	}
	b = append(b, `,"amount_minor":`...)
	b = strconv.AppendInt(b, t.AmountMinor, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, t.Currency)
	b = append(b, `,"merchant_id":`...)
	b = appendString(b, t.MerchantID)
	b = append(b, `,"merchant_category":`...)
	b = appendString(b, t.MerchantCategory)
	b = append(b, `,"merchant_country":`...)
	b = appendString(b, t.MerchantCountry)
	b = append(b, `,"channel":`...)
	b = appendString(b, t.Channel)
	if t.Lat != nil {
		b = append(b, `,"lat":`...)
		b = appendFloat(b, *t.Lat, &ok)
	}
	if t.Lon != nil {
		b = append(b, `,"lon":`...)
		b = appendFloat(b, *t.Lon, &ok)
	}
	if t.DeviceID != "" {
		b = append(b, `,"device_id":`...)
		b = appendString(b, t.DeviceID)
	}
	if t.IP != "" {
		b = append(b, `,"ip":`...)
		b = appendString(b, t.IP)
	}
	b = append(b, `,"event_time":`...)
	b = appendTime(b, t.EventTime, &ok)
	if !t.IngestTime.IsZero() {
		b = append(b, `,"ingest_time":`...)
		b = appendTime(b, t.IngestTime, &ok)
	}
	b = append(b, '}')
	return b, ok
}

func appendScored(b []byte, s *Scored) ([]byte, bool) {
	ok := true
	b = append(b, `{"schema":`...)
	b = appendString(b, s.Schema)
	b = append(b, `,"transaction":`...)
	b, ok = appendTransaction(b, &s.Transaction) // ok was true so far
	b = append(b, `,"features":`...)
	b = appendFeatures(b, &s.Features, &ok)
	b = append(b, `,"score":`...)
	b = appendFloat(b, s.Score, &ok)
	b = append(b, `,"decision":`...)
	b = appendString(b, s.Decision)
	b = append(b, `,"reasons":`...)
	if s.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendReason(b, &s.Reasons[i], &ok)
		}
		b = append(b, ']')
	}
	b = append(b, `,"rule_set_version":`...)
	b = strconv.AppendInt(b, s.RuleSetVersion, 10)
	b = append(b, `,"model_version":`...)
	b = appendString(b, s.ModelVersion)
	b = append(b, `,"late":`...)
	b = strconv.AppendBool(b, s.Late)
	if !s.Watermark.IsZero() {
		b = append(b, `,"watermark":`...)
		b = appendTime(b, s.Watermark, &ok)
	}
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(s.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, s.Offset, 10)
	b = append(b, '}')
	return b, ok
}

func appendFeatures(b []byte, f *Features, ok *bool) []byte {
	b = append(b, `{"count_1m":`...)
	b = strconv.AppendInt(b, f.Count1m, 10)
	b = append(b, `,"count_10m":`...)
	b = strconv.AppendInt(b, f.Count10m, 10)
	b = append(b, `,"count_1h":`...)
	b = strconv.AppendInt(b, f.Count1h, 10)
	b = append(b, `,"count_24h":`...)
	b = strconv.AppendInt(b, f.Count24h, 10)
	b = append(b, `,"sum_1h":`...)
	b = strconv.AppendInt(b, f.Sum1h, 10)
	b = append(b, `,"sum_24h":`...)
	b = strconv.AppendInt(b, f.Sum24h, 10)
	b = append(b, `,"distinct_merchants_1h":`...)
	b = strconv.AppendInt(b, f.DistinctMerchants1h, 10)
	b = append(b, `,"distinct_countries_24h":`...)
	b = strconv.AppendInt(b, f.DistinctCountries24h, 10)
	b = append(b, `,"small_count_10m":`...)
	b = strconv.AppendInt(b, f.SmallCount10m, 10)
	b = append(b, `,"secs_since_prev":`...)
	b = appendFloat(b, f.SecsSincePrev, ok)
	b = append(b, `,"km_from_prev":`...)
	b = appendFloat(b, f.KmFromPrev, ok)
	b = append(b, `,"kmh_from_prev":`...)
	b = appendFloat(b, f.KmhFromPrev, ok)
	b = append(b, `,"arrival_kmh":`...)
	b = appendFloat(b, f.ArrivalKmh, ok)
	b = append(b, `,"amount_zscore":`...)
	b = appendFloat(b, f.AmountZScore, ok)
	b = append(b, `,"amount_ratio":`...)
	b = appendFloat(b, f.AmountRatio, ok)
	b = append(b, `,"new_country":`...)
	b = strconv.AppendBool(b, f.NewCountry)
	b = append(b, `,"new_merchant":`...)
	b = strconv.AppendBool(b, f.NewMerchant)
	b = append(b, `,"home_country_mismatch":`...)
	b = strconv.AppendBool(b, f.HomeCountryMismatch)
	b = append(b, `,"account_age_days":`...)
	b = appendFloat(b, f.AccountAgeDays, ok)
	b = append(b, `,"risk_tier":`...)
	b = strconv.AppendInt(b, f.RiskTier, 10)
	b = append(b, `,"profile_missing":`...)
	b = strconv.AppendBool(b, f.ProfileMissing)
	b = append(b, `,"history_count":`...)
	b = strconv.AppendInt(b, f.HistoryCount, 10)
	b = append(b, `,"history_days":`...)
	b = appendFloat(b, f.HistoryDays, ok)
	b = append(b, `,"new_device":`...)
	b = strconv.AppendBool(b, f.NewDevice)
	b = append(b, `,"new_ip":`...)
	b = strconv.AppendBool(b, f.NewIP)
	b = append(b, `,"device_known":`...)
	b = strconv.AppendBool(b, f.DeviceKnown)
	b = append(b, `,"devices_1h":`...)
	b = strconv.AppendInt(b, f.Devices1h, 10)
	b = append(b, `,"merchant_visits":`...)
	b = strconv.AppendInt(b, f.MerchantVisits, 10)
	b = append(b, `,"repeat_merchant_10m":`...)
	b = strconv.AppendBool(b, f.RepeatMerchant10m)
	b = append(b, `,"merchant_days":`...)
	b = appendFloat(b, f.MerchantDays, ok)
	b = append(b, `,"distinct_merchants_10m":`...)
	b = strconv.AppendInt(b, f.DistinctMerchants10m, 10)
	b = append(b, `,"amount_ratio_mcc":`...)
	b = appendFloat(b, f.AmountRatioMCC, ok)
	b = append(b, `,"impossible_arrival":`...)
	b = strconv.AppendBool(b, f.ImpossibleArrival)
	b = append(b, `,"device_cards_24h":`...)
	b = strconv.AppendInt(b, f.DeviceCards24h, 10)
	b = append(b, `,"ip_cards_24h":`...)
	b = strconv.AppendInt(b, f.IPCards24h, 10)
	b = append(b, `,"visited_compromised_merchant":`...)
	b = strconv.AppendBool(b, f.VisitedCompromisedMerchant)
	if f.EntityStale {
		b = append(b, `,"entity_stale":true`...)
	}
	return append(b, '}')
}

func appendReason(b []byte, r *Reason, ok *bool) []byte {
	b = append(b, `{"code":`...)
	b = appendString(b, r.Code)
	b = append(b, `,"source":`...)
	b = appendString(b, r.Source)
	b = append(b, `,"weight":`...)
	b = appendFloat(b, r.Weight, ok)
	if r.Detail != "" {
		b = append(b, `,"detail":`...)
		b = appendString(b, r.Detail)
	}
	if r.Shadow {
		b = append(b, `,"shadow":true`...)
	}
	return append(b, '}')
}

func appendStats(b []byte, s *Stats) ([]byte, bool) {
	ok := true
	b = append(b, `{"schema":`...)
	b = appendString(b, s.Schema)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(s.Partition), 10)
	b = append(b, `,"window_start":`...)
	b = appendTime(b, s.WindowStart, &ok)
	b = append(b, `,"window_end":`...)
	b = appendTime(b, s.WindowEnd, &ok)
	b = append(b, `,"revision":`...)
	b = strconv.AppendInt(b, int64(s.Revision), 10)
	b = append(b, `,"final":`...)
	b = strconv.AppendBool(b, s.Final)
	if !s.Watermark.IsZero() {
		b = append(b, `,"watermark":`...)
		b = appendTime(b, s.Watermark, &ok)
	}
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, s.Count, 10)
	b = append(b, `,"approved":`...)
	b = strconv.AppendInt(b, s.Approved, 10)
	b = append(b, `,"review":`...)
	b = strconv.AppendInt(b, s.Review, 10)
	b = append(b, `,"declined":`...)
	b = strconv.AppendInt(b, s.Declined, 10)
	b = append(b, `,"late":`...)
	b = strconv.AppendInt(b, s.Late, 10)
	b = append(b, `,"too_late":`...)
	b = strconv.AppendInt(b, s.TooLate, 10)
	b = append(b, `,"amount_minor":`...)
	b = strconv.AppendInt(b, s.AmountMinor, 10)
	b = append(b, `,"latency_p50_ms":`...)
	b = appendFloat(b, s.LatencyP50Ms, &ok)
	b = append(b, `,"latency_p99_ms":`...)
	b = appendFloat(b, s.LatencyP99Ms, &ok)
	b = append(b, `,"latency_max_ms":`...)
	b = appendFloat(b, s.LatencyMaxMs, &ok)
	b = append(b, '}')
	return b, ok
}

// appendFloat formats f as encoding/json does (ES6 number formatting: 'f'
// from 1e-6 up to 1e21, 'e' outside, with "e-07" shortened to "e-7"). A
// non-finite f clears *ok: encoding/json refuses it.
func appendFloat(b []byte, f float64, ok *bool) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		*ok = false
		return b
	}
	abs := math.Abs(f)
	if abs < 1<<53 && f == math.Trunc(f) && f != 0 {
		// An integer below 2^53 is exact, and its shortest 'f' form is its
		// decimal digits; strconv.AppendInt writes them much faster.
		return strconv.AppendInt(b, int64(f), 10)
	}
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendTime writes t as time.Time.MarshalJSON does: a quoted RFC 3339 time
// with nanoseconds as needed. A time RFC 3339 cannot hold (year outside
// 0–9999, offset of a day or more) clears *ok.
func appendTime(b []byte, t time.Time, ok *bool) []byte {
	b = append(b, '"')
	out, err := t.AppendText(b)
	if err != nil {
		*ok = false
		return b
	}
	return append(out, '"')
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes encoding/json writes unescaped (with its
// default HTML escaping: <, > and & are escaped too).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s quoted and escaped exactly as encoding/json does:
// \" \\ \b \f \n \r \t, other control bytes and <, >, & as \u00XX, invalid
// UTF-8 as \ufffd, and U+2028, U+2029 as \u2028, \u2029.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Buffer sizes for Encode, so that encoding allocates once: the bytes of
// a record apart from its strings (keys, numbers, times, a little slack),
// plus the strings.
const (
	transactionSizeBase = 288
	scoredSizeBase      = 1344 // the transaction, the features (352 for the long-memory ones, 96 for the entity ones) and the rest
	reasonSizeBase      = 64
	statsSizeBase       = 384
)

func transactionSize(t *Transaction) int {
	return transactionSizeBase + len(t.Schema) + len(t.TransactionID) + len(t.CardID) + len(t.AccountID) +
		len(t.Currency) + len(t.MerchantID) + len(t.MerchantCategory) + len(t.MerchantCountry) +
		len(t.Channel) + len(t.DeviceID) + len(t.IP)
}

func scoredSize(s *Scored) int {
	n := scoredSizeBase - transactionSizeBase + transactionSize(&s.Transaction) +
		len(SchemaScored) + len(s.Decision) + len(s.ModelVersion)
	for i := range s.Reasons {
		r := &s.Reasons[i]
		n += reasonSizeBase + len(r.Code) + len(r.Source) + len(r.Detail)
	}
	return n
}
