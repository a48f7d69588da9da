package event

import (
	"testing"
	"time"
)

// The codec benchmarks run the hand-written path ("fast") and the
// encoding/json reference ("encoding-json") side by side, so one run
// compares them under the same load:
//
//	go test -run '^$' -bench 'Decode$|Encode$' -benchmem ./pkg/event/

func benchTransaction() Transaction {
	tx, _, _ := baseRecords()
	tx.DeviceID = "device-77"
	tx.IngestTime = time.Date(2026, 11, 22, 11, 59, 0, 250_000_000, time.UTC)
	return tx
}

func BenchmarkTransactionDecode(b *testing.B) {
	in, err := benchTransaction().Encode()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode func([]byte) (Transaction, error)
	}{
		{"fast", DecodeTransaction},
		{"encoding-json", func(b []byte) (Transaction, error) { return decodeTransactionRef(b, RejectUnknown) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := bc.decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTransactionEncode(b *testing.B) {
	tx := benchTransaction()
	for _, bc := range []struct {
		name   string
		encode func(Transaction) ([]byte, error)
	}{{"fast", Transaction.Encode}, {"encoding-json", refEncodeTransaction}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.encode(tx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkScoredEncode(b *testing.B) {
	_, s, _ := baseRecords()
	s.Transaction = benchTransaction()
	s.Reasons = s.Reasons[:1]
	for _, bc := range []struct {
		name   string
		encode func(Scored) ([]byte, error)
	}{{"fast", Scored.Encode}, {"encoding-json", refEncodeScored}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.encode(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkStatsEncode(b *testing.B) {
	_, _, st := baseRecords()
	for _, bc := range []struct {
		name   string
		encode func(Stats) ([]byte, error)
	}{{"fast", Stats.Encode}, {"encoding-json", refEncodeStats}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.encode(st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScoredDecode is what the alerts sink and live stream pay per
// record: the key check (exact case, no duplicates) and encoding/json.
func BenchmarkScoredDecode(b *testing.B) {
	sc := Scored{Transaction: benchTransaction(), Decision: DecisionReview, Score: 0.5,
		Reasons: []Reason{{Code: "VELOCITY_1M", Source: SourceRule, Weight: 0.3}}}
	in, err := sc.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := DecodeScored(in); err != nil {
			b.Fatal(err)
		}
	}
}
