package traffic

import (
	"bytes"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

var start = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// generate draws n transactions arriving every step from start.
func generate(g *Generator, n int, step time.Duration) []Labeled {
	out := make([]Labeled, n)
	for i := range out {
		out[i] = g.Next(start.Add(time.Duration(i) * step))
	}
	return out
}

func TestGeneratorIsDeterministicAndValid(t *testing.T) {
	cfg := Config{Seed: 7, Cards: 100, FraudRate: 0.05, RetryRate: 0.05,
		Delay: Delay{Median: 100 * time.Millisecond, TailFraction: 0.05, TailMax: 10 * time.Second, LateFraction: 0.01, LateMax: 5 * time.Minute}}
	run := func() ([]Labeled, map[Pattern]int) {
		g := New(cfg)
		var out []Labeled
		counts := map[Pattern]int{}
		for i := 0; i < 20000; i++ {
			now := start.Add(time.Duration(i) * 100 * time.Millisecond)
			l := g.Next(now)
			if err := l.Tx.Validate(now, 0); err != nil {
				t.Fatalf("transaction %d invalid: %v", i, err)
			}
			out = append(out, l)
			counts[l.Pattern]++
		}
		return out, counts
	}
	a, counts := run()
	b, _ := run()
	for i := range a {
		ea, _ := a[i].Tx.Encode()
		eb, _ := b[i].Tx.Encode()
		if !bytes.Equal(ea, eb) || a[i].Pattern != b[i].Pattern || a[i].Retry != b[i].Retry || a[i].Episode != b[i].Episode {
			t.Fatalf("same seed, different transaction %d:\n%s\n%s", i, ea, eb)
		}
	}
	for _, p := range append([]Pattern{Normal}, Scenarios...) {
		if counts[p] == 0 {
			t.Errorf("no %s transactions in %d (counts %v)", p, len(a), counts)
		}
	}
	if counts[Normal] < len(a)*3/4 {
		t.Errorf("fraud dominates: %v", counts)
	}
	ids := map[string]bool{}
	for _, l := range a {
		if ids[l.Tx.TransactionID] != l.Retry {
			t.Fatalf("transaction %s: retry %v, seen before %v", l.Tx.TransactionID, l.Retry, ids[l.Tx.TransactionID])
		}
		ids[l.Tx.TransactionID] = true
	}

	other := New(Config{Seed: 8, Cards: 100, FraudRate: 0.05})
	if l := other.Next(start); l.Tx.CardID == a[0].Tx.CardID && l.Tx.AmountMinor == a[0].Tx.AmountMinor {
		t.Errorf("seeds 7 and 8 start alike: %+v", l.Tx)
	}
}

// The zero Config keeps the behaviour tools/devstack relies on: distinct
// transactions, no retries, arrivals at most OutOfOrder after event time.
func TestZeroConfigDefaults(t *testing.T) {
	g := New(Config{})
	ids := map[string]bool{}
	for i, l := range generate(g, 5000, time.Millisecond) {
		now := start.Add(time.Duration(i) * time.Millisecond)
		if l.Retry || ids[l.Tx.TransactionID] {
			t.Fatalf("transaction %d (%s) repeats", i, l.Tx.TransactionID)
		}
		ids[l.Tx.TransactionID] = true
		if lag := now.Sub(l.Tx.EventTime); l.Episode == "" && (lag < 0 || lag > 2*time.Second) {
			t.Fatalf("transaction %d lags %v, want within the default 2s", i, lag)
		}
	}
	if s := g.Stats(); s.Draws == 0 || s.Transactions != 5000 || s.Retries != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestScenarioRates(t *testing.T) {
	rates := map[Pattern]float64{CardTesting: 0.004, AccountTakeover: 0.002, ImpossibleTravel: 0.003, AmountSpike: 0.006, CompromisedMerchant: 0.001}
	g := New(Config{Seed: 3, Cards: 5000, Scenarios: rates})
	generate(g, 200_000, 10*time.Millisecond)
	s := g.Stats()
	for p, want := range rates {
		got := float64(s.Episodes[p]) / float64(s.Draws)
		// The count is binomial: allow four standard deviations.
		sd := math.Sqrt(want * (1 - want) / float64(s.Draws))
		if math.Abs(got-want) > 4*sd {
			t.Errorf("%s: %d episodes in %d draws = %.5f, want %.5f ± %.5f", p, s.Episodes[p], s.Draws, got, want, 4*sd)
		}
	}
	// Absent scenarios do not occur.
	g = New(Config{Seed: 3, Scenarios: map[Pattern]float64{}})
	for _, l := range generate(g, 10_000, 10*time.Millisecond) {
		if l.Fraud() || l.Episode != "" {
			t.Fatalf("fraud with every rate zero: %+v", l)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"unknown scenario":  {Scenarios: map[Pattern]float64{"bust_out": 0.1}},
		"rate above 1":      {Scenarios: map[Pattern]float64{CardTesting: 1.5}},
		"rates add above 1": {Scenarios: map[Pattern]float64{CardTesting: 0.6, AmountSpike: 0.6}},
		"negative retry":    {RetryRate: -0.1},
		"tail without max":  {Delay: Delay{TailFraction: 0.1}},
		"late max 30s":      {Delay: Delay{LateFraction: 0.1, LateMax: 30 * time.Second}},
		"fractions above 1": {Delay: Delay{TailFraction: 0.7, TailMax: 5 * time.Second, LateFraction: 0.7, LateMax: 5 * time.Minute}},
		"card prefix space": {CardPrefix: "card "},
		"card prefix long":  {CardPrefix: strings.Repeat("c", 51)},
	} {
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	if err := (Config{Scenarios: map[Pattern]float64{CardTesting: 0.01}, RetryRate: 0.01}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestCardPrefix(t *testing.T) {
	def := New(Config{Seed: 1, Cards: 3})
	if got := def.CardIDs(); !slices.Equal(got, []string{"card-000000", "card-000001", "card-000002"}) {
		t.Fatalf("default card ids %v", got)
	}
	g := New(Config{Seed: 2, Cards: 3, CardPrefix: "card-s2-"})
	if got := g.CardIDs(); !slices.Equal(got, []string{"card-s2-000000", "card-s2-000001", "card-s2-000002"}) {
		t.Fatalf("prefixed card ids %v", got)
	}
	for range 50 {
		tx := g.Next(time.Now()).Tx
		if !strings.HasPrefix(tx.CardID, "card-s2-") || tx.AccountID != "acct-"+strings.TrimPrefix(tx.CardID, "card-") {
			t.Fatalf("card %q account %q", tx.CardID, tx.AccountID)
		}
		if err := tx.Validate(tx.EventTime, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
}

// episodes generates with only scenario p and groups its transactions by
// episode, in arrival order.
func episodes(t *testing.T, p Pattern) (*Generator, map[string][]Labeled) {
	t.Helper()
	g := New(Config{Seed: 11, Cards: 500, Scenarios: map[Pattern]float64{p: 0.01}})
	byEpisode := map[string][]Labeled{}
	for _, l := range generate(g, 60_000, 50*time.Millisecond) {
		if l.Episode != "" {
			byEpisode[l.Episode] = append(byEpisode[l.Episode], l)
		}
		if l.Fraud() && l.Pattern != p {
			t.Fatalf("pattern %s with only %s enabled", l.Pattern, p)
		}
	}
	if len(byEpisode) < 20 {
		t.Fatalf("only %d %s episodes", len(byEpisode), p)
	}
	return g, byEpisode
}

func byEventTime(ls []Labeled) []Labeled {
	ls = slices.Clone(ls)
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].Tx.EventTime.Before(ls[j].Tx.EventTime) })
	return ls
}

func cardOf(g *Generator, id string) *card {
	for i := range g.pop.cards {
		if g.pop.cards[i].id == id {
			return &g.pop.cards[i]
		}
	}
	return nil
}

func usCents(tx event.Transaction) float64 {
	for _, c := range cities {
		if c.currency == tx.Currency {
			return float64(tx.AmountMinor) / c.fx
		}
	}
	return math.NaN()
}

func TestLabels(t *testing.T) {
	complete := func(ls []Labeled, min int) bool { return len(ls) >= min }
	t.Run("card testing is many small e-commerce charges on one card", func(t *testing.T) {
		g, eps := episodes(t, CardTesting)
		for id, ls := range eps {
			ls = byEventTime(ls)
			if !complete(ls, 8) {
				continue // cut off by the end of the run
			}
			c := cardOf(g, ls[0].Tx.CardID)
			for _, l := range ls {
				tx := l.Tx
				if l.Pattern != CardTesting || tx.CardID != c.id || tx.Channel != event.ChannelEcommerce ||
					usCents(tx) > 201 || tx.DeviceID == c.deviceID() || tx.DeviceID != ls[0].Tx.DeviceID || tx.MerchantID != ls[0].Tx.MerchantID {
					t.Fatalf("%s: step %+v", id, tx)
				}
			}
			if span := ls[len(ls)-1].Tx.EventTime.Sub(ls[0].Tx.EventTime); span > 20*6*time.Second {
				t.Errorf("%s: %d charges over %v", id, len(ls), span)
			}
		}
	})
	t.Run("account takeover is a new device abroad with rising amounts", func(t *testing.T) {
		g, eps := episodes(t, AccountTakeover)
		for id, ls := range eps {
			ls = byEventTime(ls)
			c := cardOf(g, ls[0].Tx.CardID)
			if len(ls) > 6 {
				t.Fatalf("%s: %d steps", id, len(ls))
			}
			for i, l := range ls {
				tx := l.Tx
				if l.Pattern != AccountTakeover || tx.CardID != c.id || tx.Channel != event.ChannelEcommerce ||
					tx.DeviceID == c.deviceID() || tx.IP == c.homeIP() || tx.MerchantCountry == cities[c.home].country {
					t.Fatalf("%s: step %+v", id, tx)
				}
				if i > 0 && usCents(tx) < 1.5*usCents(ls[i-1].Tx) {
					t.Errorf("%s: amount %v after %v does not rise", id, usCents(tx), usCents(ls[i-1].Tx))
				}
			}
		}
	})
	t.Run("impossible travel is a purchase at home then one far away minutes later", func(t *testing.T) {
		g, eps := episodes(t, ImpossibleTravel)
		for id, ls := range eps {
			ls = byEventTime(ls)
			home := ls[0].Tx
			c := cardOf(g, home.CardID)
			if ls[0].Fraud() || home.Channel != event.ChannelCardPresent || home.MerchantCountry != cities[c.home].country {
				t.Fatalf("%s: first step %+v (%s)", id, home, ls[0].Pattern)
			}
			for _, l := range ls[1:] {
				tx := l.Tx
				km := haversineKm(*home.Lat, *home.Lon, *tx.Lat, *tx.Lon)
				hours := tx.EventTime.Sub(home.EventTime).Hours()
				if l.Pattern != ImpossibleTravel || tx.CardID != c.id || tx.Channel != event.ChannelCardPresent || km < 1900 || km/hours < 5000 {
					t.Fatalf("%s: %+v, %.0f km in %.2f h", id, tx, km, hours)
				}
			}
		}
	})
	t.Run("amount spike is one purchase far above the card's habit", func(t *testing.T) {
		g, eps := episodes(t, AmountSpike)
		for id, ls := range eps {
			c := cardOf(g, ls[0].Tx.CardID)
			if len(ls) != 1 || ls[0].Pattern != AmountSpike || usCents(ls[0].Tx) < 19.9*c.typical() ||
				ls[0].Tx.MerchantCountry != cities[c.home].country {
				t.Fatalf("%s: %+v, habit %.0f", id, ls, c.typical())
			}
		}
	})
	t.Run("compromised merchant is a common point of purchase, then a cash-out burst", func(t *testing.T) {
		_, eps := episodes(t, CompromisedMerchant)
		whole := 0
		for id, ls := range eps {
			ls = byEventTime(ls)
			exposed, cashed := map[string]bool{}, map[string]bool{}
			var lastExposure time.Time
			for _, l := range ls {
				switch l.Pattern {
				case Normal:
					if l.Tx.MerchantID != ls[0].Tx.MerchantID || exposed[l.Tx.CardID] || l.Tx.Channel != event.ChannelCardPresent {
						t.Fatalf("%s: exposure %+v", id, l.Tx)
					}
					exposed[l.Tx.CardID], lastExposure = true, l.Tx.EventTime
				case CompromisedMerchant:
					if !exposed[l.Tx.CardID] || cashed[l.Tx.CardID] || !l.Tx.EventTime.After(lastExposure) {
						t.Fatalf("%s: cash-out %+v of a card not exposed before", id, l.Tx)
					}
					cashed[l.Tx.CardID] = true
				default:
					t.Fatalf("%s: pattern %s", id, l.Pattern)
				}
			}
			if len(cashed) > 0 && len(exposed) < 6 {
				t.Fatalf("%s: %d exposed cards", id, len(exposed))
			}
			if len(cashed) == len(exposed) {
				whole++
				var merchant, device string
				for _, l := range ls {
					if l.Fraud() {
						if merchant != "" && (l.Tx.MerchantID != merchant || l.Tx.DeviceID != device) {
							t.Fatalf("%s: cash-out spread over merchants or devices", id)
						}
						merchant, device = l.Tx.MerchantID, l.Tx.DeviceID
					}
				}
			}
		}
		if whole == 0 {
			t.Error("no compromised-merchant episode ran to its end")
		}
	})
}

func TestDelayDistribution(t *testing.T) {
	d := Delay{Median: 100 * time.Millisecond, TailFraction: 0.04, TailMax: 10 * time.Second, LateFraction: 0.01, LateMax: 5 * time.Minute}
	g := New(Config{Seed: 5, Delay: d, Scenarios: map[Pattern]float64{}})
	const n = 100_000
	var lags []time.Duration
	tail, late := 0, 0
	for i := range n {
		now := start.Add(time.Duration(i) * time.Millisecond)
		lag := now.Sub(g.Next(now).Tx.EventTime)
		switch {
		case lag >= time.Minute:
			late++
		case lag >= time.Second:
			tail++
		}
		lags = append(lags, lag)
	}
	slices.Sort(lags)
	if med := lags[n/2]; med < 90*time.Millisecond || med > 115*time.Millisecond {
		t.Errorf("median lag %v, want about 100ms", med)
	}
	// The exponential body puts e^-(1s·ln2/100ms) ≈ 0.1% above 1 s.
	if f := float64(tail) / n; f < 0.035 || f > 0.047 {
		t.Errorf("tail share %.4f, want about 0.04", f)
	}
	if f := float64(late) / n; f < 0.008 || f > 0.012 {
		t.Errorf("late share %.4f, want about 0.01", f)
	}
	if lags[n-1] > 5*time.Minute {
		t.Errorf("largest lag %v beyond LateMax", lags[n-1])
	}
}

func TestRetriesResendTheSameTransaction(t *testing.T) {
	g := New(Config{Seed: 9, RetryRate: 0.1, RetryAfter: time.Second, FraudRate: 0.05})
	first := map[string][]byte{}
	firstAt := map[string]time.Time{}
	retries := 0
	ls := generate(g, 50_000, 10*time.Millisecond)
	for i, l := range ls {
		now := start.Add(time.Duration(i) * 10 * time.Millisecond)
		b, err := l.Tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		id := l.Tx.TransactionID
		if !l.Retry {
			first[id], firstAt[id] = b, now
			continue
		}
		retries++
		if !bytes.Equal(first[id], b) {
			t.Fatalf("retry of %s differs:\n%s\n%s", id, first[id], b)
		}
		// Due items come out one per Next, so a retry may wait a few steps.
		if d := now.Sub(firstAt[id]); d < 50*time.Millisecond || d > time.Second+100*time.Millisecond {
			t.Fatalf("retry of %s %v after the first send", id, d)
		}
		if l.Pattern != Normal && l.Episode == "" {
			t.Fatalf("retry lost its label: %+v", l)
		}
	}
	if f := float64(retries) / float64(len(first)); f < 0.09 || f > 0.11 {
		t.Errorf("%d retries of %d transactions, want about 10%%", retries, len(first))
	}
	if s := g.Stats(); s.Retries != retries {
		t.Errorf("stats count %d retries, saw %d", s.Retries, retries)
	}

	// At the end of a run the retries still scheduled come out when due;
	// episode steps stay.
	g = New(Config{Seed: 9, RetryRate: 0.5, RetryAfter: time.Minute, FraudRate: 0.2})
	ls = generate(g, 1000, time.Millisecond)
	steps := 0
	for _, it := range g.queue {
		if !it.l.Retry {
			steps++
		}
	}
	end := start.Add(time.Second)
	early, more := g.DueRetries(end)
	if !more {
		t.Fatal("no retries left after the first second")
	}
	late, more := g.DueRetries(end.Add(time.Minute))
	drained := append(early, late...)
	if more || len(drained) < 400 || g.Pending() != steps {
		t.Errorf("drained %d retries (more: %v), %d left queued, want %d episode steps", len(drained), more, g.Pending(), steps)
	}
	sent := map[string]bool{}
	for _, l := range ls {
		sent[l.Tx.TransactionID] = true
	}
	for i, l := range drained {
		if !l.Retry || !sent[l.Tx.TransactionID] || i > 0 && drained[i-1].Tx.TransactionID == l.Tx.TransactionID {
			t.Fatalf("drained %+v", l)
		}
	}
}

func BenchmarkGeneratorNext(b *testing.B) {
	g := New(Config{Seed: 1, Cards: 100_000, FraudRate: 0.02, RetryRate: 0.01,
		Delay: Delay{Median: 100 * time.Millisecond, TailFraction: 0.04, TailMax: 10 * time.Second, LateFraction: 0.005, LateMax: 5 * time.Minute}})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g.Next(start.Add(time.Duration(i) * 200 * time.Microsecond))
	}
}

func BenchmarkGeneratorNextEncode(b *testing.B) {
	g := New(Config{Seed: 1, Cards: 100_000, FraudRate: 0.02})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := g.Next(start.Add(time.Duration(i) * 200 * time.Microsecond)).Tx.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
