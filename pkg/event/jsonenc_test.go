package event

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// The reference encoders: what Encode did before the hand-written
// encoders, encoding/json by reflection.

func refEncodeTransaction(t Transaction) ([]byte, error) {
	t.Schema = SchemaTransaction
	return json.Marshal(t)
}

func refEncodeScored(s Scored) ([]byte, error) {
	s.Schema = SchemaScored
	if s.Reasons == nil {
		s.Reasons = []Reason{}
	}
	return json.Marshal(s)
}

func refEncodeStats(s Stats) ([]byte, error) {
	s.Schema = SchemaStats
	return json.Marshal(s)
}

// sameEncoding fails t unless got and want are the same bytes, or the same
// error.
func sameEncoding(t *testing.T, what string, got []byte, gotErr error, want []byte, wantErr error) {
	t.Helper()
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("%s: error %v, encoding/json: %v", what, gotErr, wantErr)
	case gotErr != nil:
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("%s: error %q, encoding/json %q", what, gotErr, wantErr)
		}
	case string(got) != string(want):
		t.Fatalf("%s differs from encoding/json:\n got  %s\n want %s", what, got, want)
	}
}

func checkAllEncoders(t *testing.T, tx Transaction, s Scored, st Stats) {
	t.Helper()
	got, err := tx.AppendJSON([]byte("prefix"))
	want, wantErr := json.Marshal(tx)
	if err == nil {
		if !strings.HasPrefix(string(got), "prefix") {
			t.Fatalf("AppendJSON lost dst: %s", got)
		}
		got = got[len("prefix"):]
	}
	sameEncoding(t, "Transaction.AppendJSON", got, err, want, wantErr)
	got, err = tx.Encode()
	want, wantErr = refEncodeTransaction(tx)
	sameEncoding(t, "Transaction.Encode", got, err, want, wantErr)

	got, err = s.AppendJSON(nil)
	want, wantErr = json.Marshal(s)
	sameEncoding(t, "Scored.AppendJSON", got, err, want, wantErr)
	got, err = s.Encode()
	want, wantErr = refEncodeScored(s)
	sameEncoding(t, "Scored.Encode", got, err, want, wantErr)

	got, err = st.AppendJSON(nil)
	want, wantErr = json.Marshal(st)
	sameEncoding(t, "Stats.AppendJSON", got, err, want, wantErr)
	got, err = st.Encode()
	want, wantErr = refEncodeStats(st)
	sameEncoding(t, "Stats.Encode", got, err, want, wantErr)
}

var (
	edgeFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 40.7, -74.0,
		1e-6, 1e-7, -1e-7, 9.999999e-7, 1.0000001e-6, 1e-300, 5e-324, math.SmallestNonzeroFloat64,
		1e20, 1e21, -1e21, 999999999999999999999.0, 1e21 - 65536, 123456789012345678901234.0,
		1e100, math.MaxFloat64, -math.MaxFloat64, 2.5e-8, 1.5e-10, 12345.678e-12, 1e-9,
		5, -5, 1234, 1e15, -1e15, 1 << 52, 1<<53 - 1, 1 << 53, 1<<53 + 2, -(1<<53 - 1), -(1 << 53),
		123456789012345, 4503599627370495.5, 0.5, -0.5, 1 - 1e-16,
		math.NaN(), math.Inf(1), math.Inf(-1)}
	edgeStrings = []string{"", "a", "tx-1", `"quoted"`, `back\slash`, "<script>&amp;</script>",
		"\u2028\u2029", "x\u2028y", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "é", "日本語", "\xff",
		"a\xc3", "\xed\xa0\x80", "\ufffd", "\xef\xbf\xbd", "mixed \xfe <b> \u2029 \t é",
		"\U0001F600", "\xf4\x90\x80\x80", strings.Repeat("long-", 40)}
	edgeTimes = []time.Time{{},
		time.Date(2026, 11, 22, 11, 59, 0, 0, time.UTC),
		time.Date(2026, 11, 22, 11, 59, 0, 123456789, time.UTC),
		time.Date(2026, 11, 22, 11, 59, 0, 120000000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 5*3600+30*60)),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -(9*3600+30))),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("far", 24*3600)),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("farther", -26*3600)),
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.FixedZone("", 3600)), // IsZero is false, year 0 in UTC
		time.Unix(0, 0), time.UnixMilli(math.MinInt64).UTC(), time.Now()}
)

func baseRecords() (Transaction, Scored, Stats) {
	lat, lon := 40.7, -74.0
	tx := Transaction{TransactionID: "tx-1", CardID: "card_42", AmountMinor: 1299, Currency: "USD",
		MerchantID: "m-9", MerchantCategory: "5411", MerchantCountry: "US", Channel: ChannelCardPresent,
		Lat: &lat, Lon: &lon, IP: "203.0.113.7", EventTime: time.Date(2026, 11, 22, 11, 59, 0, 0, time.UTC)}
	s := Scored{Schema: SchemaScored, Transaction: tx, Features: Features{Count1m: 3, SecsSincePrev: 12.5,
		KmFromPrev: 0.001, AmountZScore: -1.25, NewCountry: true, AccountAgeDays: 1234.5, RiskTier: 2},
		Score: 0.42, Decision: DecisionReview,
		Reasons:        []Reason{{Code: "VELOCITY_1M", Source: SourceRule, Weight: 0.9, Detail: "count_1m=5 >= 5"}, {Code: "X", Source: SourceModel, Weight: 0.1, Shadow: true}},
		RuleSetVersion: 7, ModelVersion: "lr-3", Late: true, Watermark: tx.EventTime.Add(-time.Second),
		Partition: 3, Offset: 1 << 40, ScoredAt: time.Now()}
	st := Stats{Partition: 3, WindowStart: tx.EventTime, WindowEnd: tx.EventTime.Add(time.Minute), Revision: 2,
		Final: true, Count: 3, Approved: 2, Declined: 1, AmountMinor: 5000, LatencyP50Ms: 1.5, LatencyP99Ms: 12.25, LatencyMaxMs: 1e-7}
	return tx, s, st
}

// TestEncodeEdgeValues puts each edge value into every field of its type
// of every record, one at a time, and compares with encoding/json.
func TestEncodeEdgeValues(t *testing.T) {
	tx0, s0, st0 := baseRecords()
	checkAllEncoders(t, tx0, s0, st0)
	checkAllEncoders(t, Transaction{}, Scored{}, Stats{})
	for _, f := range edgeFloats {
		tx, s, st := baseRecords()
		tx.Lat, tx.Lon = &f, &f
		s.Transaction = tx
		s.Score, s.Features.KmhFromPrev, s.Features.ArrivalKmh, s.Features.AmountRatio, s.Reasons[1].Weight = f, f, f, f, f
		st.LatencyP99Ms = f
		checkAllEncoders(t, tx, s, st)
		tx.Lat = nil
		s.Features = Features{AccountAgeDays: f}
		checkAllEncoders(t, tx, s, st)
	}
	for _, str := range edgeStrings {
		tx, s, st := baseRecords()
		tx.TransactionID, tx.AccountID, tx.DeviceID, tx.IP, tx.Schema = str, str, str, str, str
		s.Transaction, s.Decision, s.ModelVersion, s.Schema = tx, str, str, str
		s.Reasons[0].Detail, s.Reasons[1].Code = str, str
		st.Schema = str
		checkAllEncoders(t, tx, s, st)
	}
	for _, tm := range edgeTimes {
		tx, s, st := baseRecords()
		tx.EventTime, tx.IngestTime = tm, tm
		s.Transaction, s.Watermark = tx, tm
		st.WindowStart, st.Watermark = tm, tm
		checkAllEncoders(t, tx, s, st)
		tx, s, st = baseRecords()
		tx.IngestTime, s.Watermark, st.WindowEnd = tm, tm, tm
		checkAllEncoders(t, tx, s, st)
	}
	tx, s, st := baseRecords()
	s.Reasons = []Reason{}
	checkAllEncoders(t, tx, s, st)
	s.Reasons = nil
	tx.Lat, tx.Lon = nil, nil
	tx.AmountMinor, s.Offset, s.RuleSetVersion, st.Count = math.MinInt64, math.MaxInt64, -1, math.MinInt64
	s.Partition, st.Revision = math.MinInt32, math.MaxInt32
	checkAllEncoders(t, tx, s, st)
}

func TestEncodeNonFiniteFails(t *testing.T) {
	_, s, _ := baseRecords()
	s.Score = math.NaN()
	if _, err := s.Encode(); err == nil || err.Error() != "json: unsupported value: NaN" {
		t.Fatalf("Encode of a NaN score: %v", err)
	}
}

// fuzzSource turns fuzz bytes into values.
type fuzzSource struct{ b []byte }

func (f *fuzzSource) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzSource) uint64() uint64 {
	var buf [8]byte
	n := copy(buf[:], f.b)
	f.b = f.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

func (f *fuzzSource) int64() int64 { return int64(f.uint64()) }

func (f *fuzzSource) bool() bool { return f.byte()&1 == 1 }

// string is either an edge string or up to 31 raw fuzz bytes.
func (f *fuzzSource) string() string {
	n := int(f.byte())
	if n >= 0xe0 {
		return edgeStrings[n%len(edgeStrings)]
	}
	n %= 32
	n = min(n, len(f.b))
	s := string(f.b[:n])
	f.b = f.b[n:]
	return s
}

// float is an edge value or any bit pattern, NaN and infinities included.
func (f *fuzzSource) float() float64 {
	if c := f.byte(); c < 0x40 {
		return edgeFloats[int(c)%len(edgeFloats)]
	}
	return math.Float64frombits(f.uint64())
}

func (f *fuzzSource) time() time.Time {
	c := f.byte()
	if c < 0x20 {
		return edgeTimes[int(c)%len(edgeTimes)]
	}
	// Seconds around the RFC 3339 range, so that some fall outside.
	sec := f.int64() % (400_000_000_000)
	nsec := f.int64() % 1_000_000_000
	tm := time.Unix(sec, nsec)
	switch c % 4 {
	case 0:
		return tm.UTC()
	case 1:
		return tm.In(time.FixedZone("", int(int32(f.uint64()))%(30*3600)))
	case 2:
		return tm.Local()
	}
	return tm
}

func (f *fuzzSource) floatPtr() *float64 {
	if f.bool() {
		return nil
	}
	x := f.float()
	return &x
}

func (f *fuzzSource) transaction() Transaction {
	return Transaction{Schema: f.string(), TransactionID: f.string(), CardID: f.string(), AccountID: f.string(),
		AmountMinor: f.int64(), Currency: f.string(), MerchantID: f.string(), MerchantCategory: f.string(),
		MerchantCountry: f.string(), Channel: f.string(), Lat: f.floatPtr(), Lon: f.floatPtr(),
		DeviceID: f.string(), IP: f.string(), EventTime: f.time(), IngestTime: f.time()}
}

func (f *fuzzSource) scored() Scored {
	s := Scored{Schema: f.string(), Transaction: f.transaction(), Features: Features{
		Count1m: f.int64(), Count10m: f.int64(), Count1h: f.int64(), Count24h: f.int64(), Sum1h: f.int64(),
		Sum24h: f.int64(), DistinctMerchants1h: f.int64(), DistinctCountries24h: f.int64(), SmallCount10m: f.int64(),
		SecsSincePrev: f.float(), KmFromPrev: f.float(), KmhFromPrev: f.float(), ArrivalKmh: f.float(),
		AmountZScore: f.float(), AmountRatio: f.float(),
		NewCountry: f.bool(), NewMerchant: f.bool(), HomeCountryMismatch: f.bool(), AccountAgeDays: f.float(),
		RiskTier: f.int64(), ProfileMissing: f.bool()},
		Score: f.float(), Decision: f.string(), RuleSetVersion: f.int64(), ModelVersion: f.string(),
		Late: f.bool(), Watermark: f.time(), Partition: int32(f.int64()), Offset: f.int64(), ScoredAt: f.time()}
	if n := int(f.byte()) % 5; n > 0 {
		s.Reasons = make([]Reason, n-1) // n == 1: empty, not nil
		for i := range s.Reasons {
			s.Reasons[i] = Reason{Code: f.string(), Source: f.string(), Weight: f.float(), Detail: f.string(), Shadow: f.bool()}
		}
	}
	return s
}

func (f *fuzzSource) stats() Stats {
	return Stats{Schema: f.string(), Partition: int32(f.int64()), WindowStart: f.time(), WindowEnd: f.time(),
		Revision: int32(f.int64()), Final: f.bool(), Watermark: f.time(), Count: f.int64(), Approved: f.int64(),
		Review: f.int64(), Declined: f.int64(), Late: f.int64(), TooLate: f.int64(), AmountMinor: f.int64(),
		LatencyP50Ms: f.float(), LatencyP99Ms: f.float(), LatencyMaxMs: f.float()}
}

// FuzzEncode checks the hand-written encoders against encoding/json on
// values built from the fuzz input: same bytes, or the same error.
func FuzzEncode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\xe1\xe2\xe3\xe4\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte(strings.Repeat("\x10abcdefgh\xf0\x33", 40)))
	f.Add([]byte(strings.Repeat("\x05<>&\u2028\xff\x41\x42\x43\x44\x45\x46\x47\x48\x21", 30)))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := &fuzzSource{b: b}
		checkAllEncoders(t, src.transaction(), src.scored(), src.stats())
	})
}
