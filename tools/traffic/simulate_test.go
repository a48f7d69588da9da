package traffic

import (
	"testing"
	"time"
)

func TestSimulate(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ls := Simulate(Config{Seed: 3, Cards: 100}, 2000, 2, start)
	if len(ls) != 2000 {
		t.Fatalf("%d transactions, want 2000", len(ls))
	}
	// 100 cards at 2 an hour: 200 an hour, so 2000 span about 10 hours of
	// event time.
	span := ls[len(ls)-1].Tx.EventTime.Sub(ls[0].Tx.EventTime)
	if span < 9*time.Hour || span > 11*time.Hour {
		t.Errorf("event times span %s, want about 10h", span)
	}
	again := Simulate(Config{Seed: 3, Cards: 100}, 2000, 2, start)
	for i := range ls {
		if ls[i].Tx.TransactionID != again[i].Tx.TransactionID || !ls[i].Tx.EventTime.Equal(again[i].Tx.EventTime) {
			t.Fatalf("transaction %d differs between two runs with one seed", i)
		}
	}
}
