package scorer

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()

func TestQueryHorizons(t *testing.T) {
	et := t0 / 1e6
	tests := []struct {
		name  string
		floor int64
		want  []time.Duration
		ok    bool
	}{
		{"no floor", math.MinInt64, horizons, true},
		{"floor far back", et - (25 * time.Hour).Milliseconds(), horizons, true},
		{"floor cuts the long ones", et - (30 * time.Minute).Milliseconds(),
			[]time.Duration{time.Minute, 10 * time.Minute, 30 * time.Minute, 30 * time.Minute}, true},
		{"floor just below", et - 1, []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond}, true},
		{"at the floor", et, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := queryHorizons(et, tt.floor, make([]time.Duration, 0, 4))
			if ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Errorf("queryHorizons = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPrevFeatures(t *testing.T) {
	// Munich to Paris, about 685 km, in one hour.
	lat1, lon1, lat2, lon2 := 48.1372, 11.5756, 48.8566, 2.3522
	cs := &cardState{hasPrev: true, prevHasLoc: true, prevT: 1_000_000, prevLat: lat1, prevLon: lon1}
	tx := event.Transaction{Lat: &lat2, Lon: &lon2}
	var f event.Features
	prevFeatures(&f, cs, &tx, 1_000_000+3_600_000)
	if f.SecsSincePrev != 3600 || math.Abs(f.KmFromPrev-685) > 5 || math.Abs(f.KmhFromPrev-f.KmFromPrev) > 1e-9 {
		t.Errorf("features %+v", f)
	}
	// Out of order: the gap is absolute.
	f = event.Features{}
	prevFeatures(&f, cs, &tx, 1_000_000-1_000)
	if f.SecsSincePrev != 1 || f.KmhFromPrev != f.KmFromPrev*3600 {
		t.Errorf("out of order: %+v", f)
	}
	// No location on this one: distances stay 0.
	f = event.Features{}
	prevFeatures(&f, cs, &event.Transaction{}, 1_000_000+60_000)
	if f.SecsSincePrev != 60 || f.KmFromPrev != 0 || f.KmhFromPrev != 0 {
		t.Errorf("no location: %+v", f)
	}
}

func TestAmountZScore(t *testing.T) {
	cs := &cardState{}
	if z := amountZScore(cs, 100); z != 0 {
		t.Errorf("empty baseline: %v", z)
	}
	for _, a := range []int64{100, 200, 300} {
		cs.observe(a)
	}
	// mean 200, sample sd 100.
	if z := amountZScore(cs, 500); math.Abs(z-3) > 1e-12 {
		t.Errorf("z = %v, want 3", z)
	}
}
