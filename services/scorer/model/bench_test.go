package model

import (
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// typicalTx is an ordinary purchase whose features trip two rules and a
// few model reasons: a realistic amount of work per transaction.
func typicalTx() (event.Transaction, event.Features) {
	lat, lon := 52.52, 13.405
	tx := event.Transaction{TransactionID: "tx-1", CardID: "card-1", AmountMinor: 64000, Currency: "EUR",
		MerchantID: "m-1", MerchantCategory: "5732", MerchantCountry: "FR", Channel: event.ChannelEcommerce,
		Lat: &lat, Lon: &lon, EventTime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	f := event.Features{Count1m: 1, Count10m: 2, Count1h: 3, Count24h: 6, Sum1h: 9000, Sum24h: 25000,
		DistinctMerchants1h: 2, DistinctCountries24h: 2, SecsSincePrev: 40, KmFromPrev: 880, KmhFromPrev: 79200,
		AmountZScore: 7.5, NewCountry: true, NewMerchant: true, HomeCountryMismatch: true, AccountAgeDays: 1200, RiskTier: 1}
	return tx, f
}

func BenchmarkModelScore(b *testing.B) {
	m, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	tx, f := typicalTx()
	env := rules.NewEnv(&tx, &f)
	dst := make([]event.Reason, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		_, dst = m.Score(&env, dst[:0])
	}
}

// BenchmarkScoreTransaction is the scorer's per-transaction cost after the
// features: fill the Env, evaluate the default rules, score the default
// model, combine.
func BenchmarkScoreTransaction(b *testing.B) {
	m, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	rs, err := rules.CompileDefault()
	if err != nil {
		b.Fatal(err)
	}
	tx, f := typicalTx()
	reasons := make([]event.Reason, 0, 16)
	var score float64
	var env rules.Env // one per partition task in the scorer
	b.ReportAllocs()
	for b.Loop() {
		env.Fill(&tx, &f)
		reasons = rs.Evaluate(&env, reasons[:0])
		var p float64
		p, reasons = m.Score(&env, reasons)
		score = rules.Combine(p, reasons)
	}
	if score < 0.5 {
		b.Fatalf("score %v: the benchmark transaction should look risky", score)
	}
}

func TestScoreTransactionDoesNotAllocate(t *testing.T) {
	m, _ := Default()
	rs, _ := rules.CompileDefault()
	tx, f := typicalTx()
	reasons := make([]event.Reason, 0, 16)
	var env rules.Env
	n := testing.AllocsPerRun(100, func() {
		env.Fill(&tx, &f)
		reasons = rs.Evaluate(&env, reasons[:0])
		var p float64
		p, reasons = m.Score(&env, reasons)
		_ = rules.Combine(p, reasons)
	})
	if n != 0 {
		t.Fatalf("%v allocations per transaction", n)
	}
	var codes []string
	for _, r := range reasons {
		codes = append(codes, r.Code)
	}
	t.Logf("reasons %v", codes)
}

// BenchmarkFit100k fits the default model's 12 features on 100,000
// synthetic examples: what fraudstream train costs per 100k labeled
// transactions, after the features.
func BenchmarkFit100k(b *testing.B) {
	m, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	ex := synthetic(7, 100_000)
	fs := m.Features()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Fit(ex, fs); err != nil {
			b.Fatal(err)
		}
	}
}
