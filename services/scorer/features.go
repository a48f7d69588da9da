package scorer

import (
	"math"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/windowing"
)

// Look-back horizons of the velocity features, ascending as
// windowing.Series.Query wants them. The longest one is the look-back
// retention: per-card history older than that (plus the allowed lateness)
// behind the watermark is evicted.
var horizons = []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}

const (
	h1m, h10m, h1h, h24h = 0, 1, 2, 3

	// retention is the longest horizon.
	retention = 24 * time.Hour

	// smallUSCents: a transaction below it (5 US dollars at the reference
	// rate) counts in small_count_10m (card testing: many tiny
	// authorisations in a row).
	smallUSCents = 500

	// flagSmall is the windowing.Record flag bit of a small amount;
	// lookbackFlags the number of flags the look-back counts.
	flagSmall, lookbackFlags = 1, 1
	// Distinct dimensions of windowing.Record, and their number.
	dimMerchant, dimCountry, lookbackDims = 0, 1, 2

	earthRadiusKm = 6371.0

	// placeRadiusKm: in-person transactions this close to where the card
	// was before are at the same place (a metropolitan area).
	placeRadiusKm = 100
	// maxPlaces bounds the places a card remembers; a new place beyond
	// them replaces the one the card was at least recently.
	maxPlaces = 4

	// impossibleKmh: no journey, by air included, reaches a place faster
	// (straight-line distance over time between purchases, gate to gate).
	impossibleKmh = 900
)

// usCents is the transaction's amount in US cents at the reference rate
// (event.USCents): amount features compare a card's amounts across the
// currencies it pays in.
func usCents(tx *event.Transaction) int64 {
	return int64(event.USCents(tx.AmountMinor, tx.Currency))
}

// newLookback is the look-back of the velocity features: the retention of
// the longest horizon, and the scorer's dimensions and flags. Those are
// part of the encoding of the card state (changelog): changing them needs a
// state migration (TestLookbackStateBytes).
func newLookback(lateness time.Duration) (*windowing.Lookback, error) {
	return windowing.NewLookback(windowing.WithRetention(retention), windowing.WithLookbackLateness(lateness),
		windowing.WithDistinctDims(lookbackDims), windowing.WithFlags(lookbackFlags))
}

// lookbackRecord is how the look-back sees a transaction: its value is the
// amount in US cents, so sum_1h and sum_24h add like with like.
func lookbackRecord(tx *event.Transaction, cents, et int64) windowing.Record {
	r := windowing.Record{
		Time:     et,
		Value:    cents,
		Distinct: [windowing.MaxDistinctDims]uint64{dimMerchant: windowing.Hash(tx.MerchantID), dimCountry: windowing.Hash(tx.MerchantCountry)},
	}
	if cents < smallUSCents {
		r.Flags = flagSmall
	}
	return r
}

// queryHorizons returns the horizons to query at event time et when state
// at or before floor no longer counts: each one cut so that it reaches no
// further back than floor. For a record that is not too late nothing is
// cut (et − 24h is above the floor); for a too-late one the cut makes the
// answer independent of how far eviction has got, which depends on batch
// boundaries. ok is false when et itself is at or below the floor.
func queryHorizons(et, floor int64, buf []time.Duration) (hs []time.Duration, ok bool) {
	if et <= floor {
		return nil, false
	}
	if floor < et-horizons[len(horizons)-1].Milliseconds() {
		return horizons, true // nothing to cut; floor may be watermark.None
	}
	span := et - floor // ms, in (0, 24h]
	hs = buf[:0]
	for _, h := range horizons {
		if h.Milliseconds() > span {
			h = time.Duration(span) * time.Millisecond
		}
		hs = append(hs, h)
	}
	return hs, true
}

// velocityFeatures fills the look-back features from the aggregates of
// the card's earlier records over horizons.
func velocityFeatures(f *event.Features, aggs []windowing.Agg) {
	f.Count1m = aggs[h1m].Count
	f.Count10m = aggs[h10m].Count
	f.Count1h = aggs[h1h].Count
	f.Count24h = aggs[h24h].Count
	f.Sum1h = aggs[h1h].Sum
	f.Sum24h = aggs[h24h].Sum
	f.DistinctMerchants1h = int64(aggs[h1h].Distinct[dimMerchant])
	f.DistinctCountries24h = int64(aggs[h24h].Distinct[dimCountry])
	f.SmallCount10m = aggs[h10m].Flagged[0]
	f.DistinctMerchants10m = int64(aggs[h10m].Distinct[dimMerchant])
}

// prevFeatures fills secs_since_prev, km_from_prev and kmh_from_prev
// against the card's latest transaction in event time (which, for a record
// arriving out of order, is later than it: the gap is then taken as its
// absolute value, since impossible travel is symmetric). Without a previous
// transaction all three are 0; without both locations the distances are 0.
func prevFeatures(f *event.Features, cs *cardState, tx *event.Transaction, et int64) {
	if !cs.hasPrev {
		return
	}
	gap := et - cs.prevT
	if gap < 0 {
		gap = -gap
	}
	f.SecsSincePrev = float64(gap) / 1000
	if !cs.prevHasLoc || tx.Lat == nil || tx.Lon == nil {
		return
	}
	km := haversineKm(cs.prevLat, cs.prevLon, *tx.Lat, *tx.Lon)
	f.KmFromPrev = km
	// A one-second floor keeps simultaneous transactions finite.
	f.KmhFromPrev = km / (max(f.SecsSincePrev, 1) / 3600)
}

// place is where a card was in person within the memory retention: the
// location of its first transaction there, the time of its latest, the
// speed at which the card arrived (arrival_kmh) and how many in-person
// purchases it made there (saturating).
type place struct {
	lat, lon   float64
	last       int64 // Unix ms
	arrivalKmh float64
	visits     uint16
}

// established reports whether the place is one the card has used: paid at
// more than once, and reached at a possible speed. A copy of the card used
// far away cannot make the genuine card's usual places suspect.
func (p *place) established() bool { return p.visits >= 2 && p.arrivalKmh <= impossibleKmh }

// inPerson reports whether the transaction's location says where the card
// was: a purchase or withdrawal in person, not an online order.
func inPerson(tx *event.Transaction) bool {
	return tx.Lat != nil && tx.Lon != nil && tx.Channel != event.ChannelEcommerce && tx.Channel != event.ChannelMOTO
}

// arrival finds the place of an in-person transaction at lat, lon and
// event time et among the card's places: the nearest one within
// placeRadiusKm (i ≥ 0), or a new place (i = -1). kmh is arrival_kmh: the
// speed at which the card reached that place, kept from its first
// transaction there; for a new place, the distance from the place the card
// was at most recently over the time since (absolute, as in prevFeatures,
// with a one-second floor); 0 for a card's first place.
//
// Why a place and not only the previous transaction: a cloned card used
// twice abroad minutes after the genuine card paid at home makes the
// second purchase abroad look local against the first. Its place, though,
// was reached at an impossible speed, while the genuine card, back home,
// is at a place it has been at all along. Places last as long as the
// card's long memory, so a card quiet for a day still knows its home: a
// copy used abroad first is the new place, the home is not (visit).
func arrival(cs *cardState, lat, lon float64, et int64) (i int, kmh float64) {
	i, best := -1, float64(placeRadiusKm)
	for j := range cs.nplaces {
		if d := haversineKm(cs.places[j].lat, cs.places[j].lon, lat, lon); d < best {
			i, best = j, d
		}
	}
	if i >= 0 {
		return i, cs.places[i].arrivalKmh
	}
	from := cs.latestPlace(-1)
	if from < 0 {
		return -1, 0
	}
	p := &cs.places[from]
	gap := et - p.last
	if gap < 0 {
		gap = -gap
	}
	return -1, haversineKm(p.lat, p.lon, lat, lon) / (max(float64(gap)/1000, 1) / 3600)
}

// visit records an in-person transaction at place i as arrival returned
// it (-1: a new place, reached at kmh).
//
// Back at an established place, the card convicts the place it was at most
// recently, if that one is not established and could not have been left
// in time: that is where a copy of the card is used (its later purchases
// there carry the impossible arrival), not here.
func (cs *cardState) visit(i int, lat, lon float64, et int64, kmh float64) {
	if i >= 0 {
		p := &cs.places[i]
		if p.established() {
			if q := cs.latestPlace(i); q >= 0 && !cs.places[q].established() {
				o := &cs.places[q]
				gap := et - o.last
				if gap < 0 {
					gap = -gap
				}
				if v := haversineKm(o.lat, o.lon, lat, lon) / (max(float64(gap)/1000, 1) / 3600); v > impossibleKmh {
					o.arrivalKmh = max(o.arrivalKmh, v)
				}
			}
		}
		p.last = max(p.last, et)
		if p.visits < math.MaxUint16 {
			p.visits++
		}
		return
	}
	i = cs.nplaces
	if i == maxPlaces {
		i = 0
		for j := range cs.nplaces {
			if cs.places[j].last < cs.places[i].last {
				i = j
			}
		}
	} else {
		cs.nplaces++
	}
	cs.places[i] = place{lat: lat, lon: lon, last: et, arrivalKmh: kmh, visits: 1}
}

// latestPlace is the index of the place other than skip the card was at
// most recently, -1 if none.
func (cs *cardState) latestPlace(skip int) int {
	from := -1
	for j := range cs.nplaces {
		if j != skip && (from < 0 || cs.places[j].last > cs.places[from].last) {
			from = j
		}
	}
	return from
}

// prunePlaces forgets the places last visited at or before floor, keeping
// the others in order.
func (cs *cardState) prunePlaces(floor int64) {
	n := 0
	for _, p := range cs.places[:cs.nplaces] {
		if p.last > floor {
			cs.places[n] = p
			n++
		}
	}
	clear(cs.places[n:cs.nplaces])
	cs.nplaces = n
}

// logCents is the logarithm of an amount in US cents, at least 1 cent.
func logCents(cents int64) float64 { return math.Log(float64(max(cents, 1))) }

// amountRatio is amount (US cents) over the geometric mean of the card's
// earlier amounts: how many times its usual spend. The geometric mean,
// unlike the arithmetic one behind amount_zscore, is not dragged up by
// the card's occasional large purchases, so a spike stands out against
// the card's habit. 0 until one amount is known.
func amountRatio(cs *cardState, amount int64) float64 {
	if cs.n == 0 {
		return 0
	}
	return math.Exp(logCents(amount) - cs.logMean)
}

// amountZScore is how many standard deviations amount (US cents) lies from
// the card's baseline (the mean and variance of its earlier amounts in US
// cents, Welford's method); 0 until two amounts are known or while they
// are all equal.
func amountZScore(cs *cardState, amount int64) float64 {
	if cs.n < 2 {
		return 0
	}
	sd := math.Sqrt(cs.m2 / float64(cs.n-1))
	if sd == 0 || math.IsNaN(sd) {
		return 0
	}
	return (float64(amount) - cs.mean) / sd
}

func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(a, 1)))
}
