package scorer

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
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

func TestArrival(t *testing.T) {
	// Berlin (home), then a clone in New York: first purchase 3 minutes
	// later, second 2 minutes after that; then the genuine card back in
	// Berlin an hour later.
	const berlinLat, berlinLon, nyLat, nyLon = 52.52, 13.40, 40.71, -74.01
	const minute = 60_000
	cs := &cardState{}
	steps := []struct {
		name     string
		lat, lon float64
		et       int64
		new      bool
		kmh      float64 // want, within 1%
	}{
		{"first place", berlinLat, berlinLon, 0, true, 0},
		{"same place, 40 km off", berlinLat + 0.3, berlinLon + 0.3, 30 * minute, false, 0},
		{"clone abroad", nyLat, nyLon, 33 * minute, true, 6385 / 0.05},
		{"clone again, looks local", nyLat + 0.01, nyLon, 35 * minute, false, 6385 / 0.05},
		{"genuine card at home", berlinLat, berlinLon, 95 * minute, false, 0},
	}
	for _, s := range steps {
		i, kmh := arrival(cs, s.lat, s.lon, s.et)
		if (i < 0) != s.new || math.Abs(kmh-s.kmh) > 0.01*s.kmh+1e-9 {
			t.Errorf("%s: place %d, %.0f km/h; want new %v, %.0f km/h", s.name, i, kmh, s.new, s.kmh)
		}
		cs.visit(i, s.lat, s.lon, s.et, kmh)
	}
	if cs.nplaces != 2 {
		t.Fatalf("%d places, want 2", cs.nplaces)
	}
	// New York expires first; Berlin was visited later.
	cs.prunePlaces(35 * minute)
	if cs.nplaces != 1 || cs.places[0].lat != berlinLat {
		t.Errorf("after pruning: %+v", cs.places[:cs.nplaces])
	}
	// Beyond maxPlaces the least recently visited place goes.
	cs = &cardState{}
	for k := range maxPlaces + 1 {
		lat := float64(k * 10)
		i, kmh := arrival(cs, lat, 0, int64(k)*24*minute)
		cs.visit(i, lat, 0, int64(k)*24*minute, kmh)
	}
	if cs.nplaces != maxPlaces || cs.places[0].lat != maxPlaces*10 {
		t.Errorf("places %+v", cs.places)
	}
}

func TestAmountRatio(t *testing.T) {
	cs := &cardState{}
	if r := amountRatio(cs, 100); r != 0 {
		t.Errorf("empty baseline: %v", r)
	}
	for _, a := range []int64{100, 1_000, 10_000} {
		cs.observe(a)
	}
	// Geometric mean 1,000 (the arithmetic one is 3,700).
	if r := amountRatio(cs, 10_000); math.Abs(r-10) > 1e-9 {
		t.Errorf("ratio %v, want 10", r)
	}
}

func TestCardStateEncoding(t *testing.T) {
	lb, err := newLookback(0)
	if err != nil {
		t.Fatal(err)
	}
	cs := newCardState(lb)
	cs.last, cs.hasPrev, cs.prevT = 5_000, true, 5_000
	cs.observe(100)
	cs.observe(900)
	cs.visit(-1, 52.5, 13.4, 4_000, 0)
	cs.visit(-1, 40.7, -74.0, 5_000, 12345.5)
	b, err := cs.appendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeCardState(lb, b)
	if err != nil {
		t.Fatal(err)
	}
	if back.nplaces != 2 || back.places != cs.places || back.logMean != cs.logMean || back.mean != cs.mean {
		t.Errorf("decoded %+v, want %+v", back, cs)
	}

	// Version 1 had no places and no log baseline.
	v1 := []byte{1}
	v1 = binary.AppendVarint(v1, 5_000)
	v1 = append(v1, 0)               // no previous transaction
	v1 = binary.AppendUvarint(v1, 2) // baseline of 2 amounts, mean 500
	v1 = binary.LittleEndian.AppendUint64(v1, math.Float64bits(500))
	v1 = binary.LittleEndian.AppendUint64(v1, math.Float64bits(320_000))
	v1 = binary.AppendUvarint(v1, 0) // no ids
	v1, _ = newCardState(lb).series.AppendBinary(v1)
	old, err := decodeCardState(lb, v1)
	if err != nil {
		t.Fatal(err)
	}
	if old.n != 2 || old.nplaces != 0 || math.Abs(old.logMean-math.Log(500)) > 1e-12 {
		t.Errorf("version 1: %+v", old)
	}
}

// TestLookbackStateBytes: the scorer's look-back (its own dimensions and
// flag, passed to windowing as options) encodes a card's series byte for
// byte as before they were options (the hex is from b43bb15, where
// windowing fixed two dimensions and four flags), so changelogs written
// then still decode, and decode back to the same bytes.
func TestLookbackStateBytes(t *testing.T) {
	const want = "018180808080808080800103b89950b5078aa9086b9b50b5078ba9081e9d50b5078ca90802d1c89eb5076e0509e24598b50733fe080781e4ca91afb3808040c801010101b0ea01b009000301b0ea01bc05010202d0ac209811000201904ea40d000102bf8db7018019000101018c15000302"
	lb, err := newLookback(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := lb.NewSeries()
	base := int64(1_765_000_000_000)
	for i, dt := range []int64{0, 60_000, 30_000, 600_000, 590_000, 3_600_000, 3_599_999} {
		tx := &event.Transaction{MerchantID: fmt.Sprintf("m%d", i%3), MerchantCountry: []string{"FR", "DE"}[i%2]}
		if err := s.Add(lookbackRecord(tx, int64(100+250*i), base+dt)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("encoding changed:\n got  %s\n want %s", got, want)
	}
	old, _ := hex.DecodeString(want)
	back := lb.NewSeries()
	if err := back.UnmarshalBinary(old); err != nil {
		t.Fatalf("decode the old encoding: %v", err)
	}
	if again, _ := back.MarshalBinary(); hex.EncodeToString(again) != want {
		t.Fatalf("re-encoding differs: %x", again)
	}
}
