package scorer

import (
	"fmt"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
)

func TestStateTime(t *testing.T) {
	p := testParams() // 1m allowed lateness
	T := time.Unix(0, t0).UTC()
	ms := func(tm time.Time) int64 { return tm.UnixMilli() }
	tests := []struct {
		name   string
		et     time.Time
		ingest time.Time // zero: none
		wm     int64
		want   int64
	}{
		{"on time, before ingest", T, T.Add(time.Second), ms(T) - 5000, ms(T)},
		{"future: clamped to ingest_time", T.Add(290 * time.Second), T, ms(T) - 5000, ms(T)},
		{"future without ingest_time: trusted", T.Add(290 * time.Second), time.Time{}, ms(T) - 5000, ms(T.Add(290 * time.Second))},
		{"late: kept", T.Add(-30 * time.Second), T, ms(T), ms(T) - 30000},
		{"too late: oldest open time", T.Add(-2 * time.Hour), T, ms(T), ms(T) - 60000 + 1},
		{"2016: oldest open time", time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), T, ms(T), ms(T) - 60000 + 1},
		{"too late without ingest_time too", T.Add(-2 * time.Hour), time.Time{}, ms(T), ms(T) - 60000 + 1},
		{"no watermark yet", time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC), T, watermark.None, ms(time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.stateTime(ms(tt.et), tt.ingest, tt.wm); got != tt.want {
				t.Errorf("stateTime = %d, want %d (Δ %d ms)", got, tt.want, got-tt.want)
			}
		})
	}
}

// cardTesting is a victim's or fraudster's burst: n quick 3 USD
// e-commerce charges of one card, event time from at, a second apart.
func cardTesting(card string, n int, at, ingest time.Time) []event.Transaction {
	var out []event.Transaction
	for i := range n {
		x := testTx(fmt.Sprintf("%s-%d", card, i), card, at.Add(time.Duration(i)*time.Second))
		x.AmountMinor, x.Currency, x.Channel = 300, "USD", event.ChannelEcommerce
		if !ingest.IsZero() {
			x.IngestTime = ingest.Add(time.Duration(i) * time.Second)
		}
		out = append(out, x)
	}
	return out
}

// TestFutureEventTimeCannotMakeOthersLate replays the attack of issue 16
// on one partition: throwaway cards dated now+290 s, then a victim's eight
// quick charges. The watermark follows ingest_time, so the victim is on
// time and declined on velocity. Records without ingest_time (a trusted
// producer straight into Kafka) keep driving the watermark by event time.
func TestFutureEventTimeCannotMakeOthersLate(t *testing.T) {
	now := time.Unix(0, t0).UTC().Add(time.Hour)
	tests := []struct {
		name        string
		attackAt    time.Time // event time of the throwaway cards' records
		ingest      bool      // records carry ingest_time (went through ingest)
		victimLate  bool
		victimCount bool // the victim's count_1m grows with its charges
	}{
		{"future-dated through ingest", now.Add(290 * time.Second), true, false, true},
		{"2016-dated through ingest", time.Date(2016, 3, 1, 0, 0, 0, 0, time.UTC), true, false, true},
		{"future-dated by a trusted producer", now.Add(290 * time.Second), false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParams()
			tk, c := newTask(0, p), newBatchCounts()
			off := int64(0)
			maxIngest := int64(watermark.None)
			send := func(x event.Transaction) event.Scored {
				t.Helper()
				if !tt.ingest {
					x.IngestTime = time.Time{}
				} else {
					maxIngest = max(maxIngest, x.IngestTime.UnixMilli())
				}
				off++
				out := tk.process(txRecord(t, 0, off, x), &c)
				if len(out) != 1 {
					t.Fatalf("%s: %d outputs", x.TransactionID, len(out))
				}
				s := decodeOut(t, out[0])
				if tt.ingest && s.Watermark.UnixMilli() > maxIngest-DefaultMaxOutOfOrder.Milliseconds() {
					t.Fatalf("%s: watermark %s ahead of the latest ingest_time %s − max delay",
						x.TransactionID, s.Watermark, time.UnixMilli(maxIngest).UTC())
				}
				return s
			}
			// Some ordinary traffic first, so the partition has a watermark.
			for i := range 3 {
				x := testTx(fmt.Sprintf("warm-%d", i), fmt.Sprintf("card-warm-%d", i), now.Add(-time.Minute+time.Duration(i)*time.Second))
				x.IngestTime = x.EventTime.Add(time.Second)
				send(x)
			}
			for i := range 23 {
				x := testTx(fmt.Sprintf("attack-%d", i), fmt.Sprintf("card-throwaway-%d", i), tt.attackAt)
				x.IngestTime = now
				send(x)
			}
			for i, x := range cardTesting("card-victim", 8, now.Add(time.Second), now.Add(time.Second)) {
				s := send(x)
				if s.Late != tt.victimLate {
					t.Errorf("victim charge %d: late = %v, want %v", i, s.Late, tt.victimLate)
				}
				if !tt.victimCount {
					continue
				}
				if s.Features.Count1m != int64(i) {
					t.Errorf("victim charge %d: count_1m = %d, want %d", i, s.Features.Count1m, i)
				}
				if i >= Velocity1mLimit && s.Decision != event.DecisionDecline {
					t.Errorf("victim charge %d: %s (reasons %+v), want decline on velocity", i, s.Decision, s.Reasons)
				}
			}
		})
	}
}

// TestBackdatedChargesCountForTheirCard: a fraudster dates a card's own
// charges two hours back, beyond the allowed lateness. They are flagged
// late, yet each counts in the card's state at the oldest open time, so
// the burst still trips velocity.
func TestBackdatedChargesCountForTheirCard(t *testing.T) {
	for _, ingest := range []bool{true, false} {
		t.Run(fmt.Sprintf("ingest_time=%v", ingest), func(t *testing.T) {
			tk, c := newTask(0, testParams()), newBatchCounts()
			now := time.Unix(0, t0).UTC().Add(3 * time.Hour)
			x := testTx("other", "card-other", now)
			x.IngestTime = now
			tk.process(txRecord(t, 0, 0, x), &c)
			ingestAt := time.Time{}
			if ingest {
				ingestAt = now.Add(time.Second)
			}
			for i, x := range cardTesting("card-fraud", 8, now.Add(-2*time.Hour), ingestAt) {
				out := tk.process(txRecord(t, 0, int64(i+1), x), &c)
				if len(out) != 1 {
					t.Fatalf("charge %d: %d outputs", i, len(out))
				}
				s := decodeOut(t, out[0])
				if !s.Late {
					t.Errorf("charge %d dated 2h back not flagged late", i)
				}
				if s.Features.Count1m != int64(i) || s.Features.SmallCount10m != int64(i) {
					t.Errorf("charge %d: count_1m %d small_count_10m %d, want %d: it escaped its card's state",
						i, s.Features.Count1m, s.Features.SmallCount10m, i)
				}
				if i >= Velocity1mLimit && s.Decision != event.DecisionDecline {
					t.Errorf("charge %d: %s, want decline on velocity", i, s.Decision)
				}
			}
			if c.tooLate != 8 {
				t.Errorf("too-late count %d, want 8", c.tooLate)
			}
		})
	}
}
