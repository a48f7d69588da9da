package entity

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// oracle recomputes the aggregator's published table by brute force from
// the full list of applied events, at each completed time.
type oracle struct {
	cfg       Config
	events    []pending // every visit and flag, at its (clamped) time
	published map[string]event.EntityEntry
}

func (o *oracle) step(prev, c int64) []event.EntityEntry {
	eval := map[string]bool{}
	for _, p := range o.events {
		if p.Time > prev && p.Time <= c {
			eval[p.Entity] = true
		}
	}
	for e := range o.published {
		eval[e] = true
	}
	var out []event.EntityEntry
	for _, e := range slices.Sorted(mapKeys(eval)) {
		lastVisit, lastFlag := map[string]int64{}, map[string]int64{}
		for _, p := range o.events {
			if p.Entity != e || p.Time > c {
				continue
			}
			m := lastVisit
			if p.Kind == event.EntityFlag {
				m = lastFlag
			}
			m[p.Card] = max(m[p.Card], p.Time)
		}
		w := o.cfg.CompromiseWindow.Milliseconds()
		var k Counts
		for _, t := range lastVisit {
			if c-t < hour {
				k.Cards1h++
			}
			if c-t < day {
				k.Cards24h++
			}
			if c-t < w {
				k.Visitors++
			}
		}
		for _, t := range lastFlag {
			if c-t < w {
				k.Flagged++
			}
		}
		notable, compromised := o.cfg.Notable(e, k)
		asOf := time.UnixMilli(c).UTC()
		prevEntry, was := o.published[e]
		switch {
		case !notable && was:
			delete(o.published, e)
			out = append(out, event.EntityEntry{Kind: event.EntryEntity, Entity: e, AsOf: asOf})
		case notable:
			entry := event.EntityEntry{Kind: event.EntryEntity, Entity: e, AsOf: asOf, Notable: true,
				Cards1h: k.Cards1h, Cards24h: k.Cards24h, Visitors: k.Visitors, Flagged: k.Flagged, Compromised: compromised}
			prevEntry.AsOf = asOf
			if was && prevEntry == entry {
				continue
			}
			o.published[e] = entry
			out = append(out, entry)
		}
	}
	return out
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// genEvents makes a stream of visit, flag and progress events from
// sources scorer partitions, keeping the progress promise: after
// progress(s, X) every event of s is later than X.
func genEvents(rng *rand.Rand, n int, sources int32) []event.EntityEvent {
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	through := make([]int64, sources)
	for i := range through {
		through[i] = base
	}
	entities := []string{"m:a", "m:b", "m:c", "d:x", "d:y", "i:10.0.0.1"}
	var out []event.EntityEvent
	for range n {
		s := int32(rng.IntN(int(sources)))
		switch r := rng.IntN(10); {
		case r < 2:
			through[s] += rng.Int64N(2 * hour)
			out = append(out, event.EntityEvent{Kind: event.EntityProgress, Source: s, Sources: sources, Time: time.UnixMilli(through[s])})
		default:
			kind := event.EntityVisit
			if r == 9 {
				kind = event.EntityFlag
			}
			t := through[s] + 1 + rng.Int64N(3*hour)
			out = append(out, event.EntityEvent{Kind: kind, Entity: entities[rng.IntN(len(entities))],
				CardID: fmt.Sprintf("c%d", rng.IntN(10)), Time: time.UnixMilli(t)})
		}
	}
	return out
}

func TestAggregatorMatchesOracle(t *testing.T) {
	for seed := range uint64(40) {
		// Windows shorter and longer than the 24-hour horizon.
		window := []time.Duration{6 * time.Hour, 30 * time.Hour}[seed%2]
		cfg := Config{CompromiseWindow: window, MinFlagged: 2, MinFlaggedShare: 0.3, MinCards: 3}.WithDefaults()
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			evs := genEvents(rng, 600, 1+int32(seed%4))
			agg := NewAggregator(cfg)
			or := &oracle{cfg: cfg, published: map[string]event.EntityEntry{}}
			tab := NewTable(365 * 24 * time.Hour)
			var steps []int64
			var changelog = map[string][]byte{}
			published := 0
			for i, ev := range evs {
				if i == len(evs)/2 { // restore from the changelog halfway
					keys, values, err := agg.TakeChanges()
					if err != nil {
						t.Fatal(err)
					}
					for j, k := range keys {
						changelog[k] = values[j]
					}
					agg = NewAggregator(cfg)
					for k, v := range changelog {
						if err := agg.Load(k, v); err != nil {
							t.Fatal(err)
						}
					}
				}
				prev := agg.Complete()
				if ev.Kind != event.EntityProgress {
					or.events = append(or.events, pending{Kind: ev.Kind, Entity: ev.Entity, Card: ev.CardID, Time: ev.Time.UnixMilli()})
				}
				got, adv := agg.Add(ev)
				if !adv {
					if len(got) != 0 {
						t.Fatalf("event %d: entries %v without an advance", i, got)
					}
					continue
				}
				c := agg.Complete()
				want := or.step(prev, c)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("event %d, complete %d: got\n%+v\nwant\n%+v", i, c, got, want)
				}
				published += len(got)
				for _, e := range got {
					tab.Apply(e)
				}
				tab.Apply(event.EntityEntry{Kind: event.EntryComplete, AsOf: time.UnixMilli(c), Partition: 0, Partitions: 1})
				steps = append(steps, c)
				if i%50 == 0 {
					keys, values, err := agg.TakeChanges()
					if err != nil {
						t.Fatal(err)
					}
					for j, k := range keys {
						changelog[k] = values[j]
					}
				}
			}
			if len(steps) < 5 {
				t.Fatalf("only %d steps: the stream does not exercise the aggregator", len(steps))
			}
			if tab.Complete() != steps[len(steps)-1] {
				t.Fatalf("table complete through %d, want %d", tab.Complete(), steps[len(steps)-1])
			}
			t.Logf("%d steps, %d entries published", len(steps), published)
		})
	}
}

// TestTableAsOf: a lookup sees the version in force at its time, and a
// tombstone ends an entity's notable spell.
func TestTableAsOf(t *testing.T) {
	tab := NewTable(time.Hour)
	at := func(ms int64) time.Time { return time.UnixMilli(ms) }
	tab.Apply(event.EntityEntry{Kind: event.EntryEntity, Entity: "m:a", AsOf: at(100), Notable: true, Flagged: 2})
	tab.Apply(event.EntityEntry{Kind: event.EntryEntity, Entity: "m:a", AsOf: at(200), Notable: true, Flagged: 3})
	tab.Apply(event.EntityEntry{Kind: event.EntryEntity, Entity: "m:a", AsOf: at(300)})
	tab.Apply(event.EntityEntry{Kind: event.EntryComplete, AsOf: at(250), Partition: 1, Partitions: 2})
	if c := tab.Complete(); c != None {
		t.Fatalf("complete %d with one of two partitions marked, want None", c)
	}
	tab.Apply(event.EntityEntry{Kind: event.EntryComplete, AsOf: at(400), Partition: 0, Partitions: 2})
	if c := tab.Complete(); c != 250 {
		t.Fatalf("complete %d, want 250 (the least mark)", c)
	}
	for _, tc := range []struct {
		at      int64
		notable bool
		flagged int64
	}{{99, false, 0}, {100, true, 2}, {199, true, 2}, {200, true, 3}, {299, true, 3}, {300, false, 0}, {1000, false, 0}} {
		e, ok := tab.Lookup("m:a", tc.at)
		if ok != tc.notable || (ok && e.Flagged != tc.flagged) {
			t.Errorf("Lookup at %d = %+v, %v; want notable %v flagged %d", tc.at, e, ok, tc.notable, tc.flagged)
		}
	}
	if _, ok := tab.Lookup("m:b", 1000); ok {
		t.Error("an entity never published is notable")
	}
}

// BenchmarkAggregatorAdd is the aggregator's cost per entity event: visits
// of 10,000 cards at 1,000 merchants, with a progress event every 100.
func BenchmarkAggregatorAdd(b *testing.B) {
	agg := NewAggregator(Config{})
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).UnixMilli()
	b.ReportAllocs()
	for i := range b.N {
		t := base + int64(i)*10
		if i%100 == 99 {
			agg.Add(event.EntityEvent{Kind: event.EntityProgress, Sources: 1, Time: time.UnixMilli(t)})
			continue
		}
		agg.Add(event.EntityEvent{Kind: event.EntityVisit, Entity: fmt.Sprintf("m:%d", i%1000),
			CardID: fmt.Sprintf("c%d", (i*7919)%10000), Time: time.UnixMilli(t + 1)})
	}
}
