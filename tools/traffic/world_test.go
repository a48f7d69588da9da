package traffic

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

var popStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func preset(t *testing.T, name string, cards int) Preset {
	t.Helper()
	p, err := PresetByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if cards > 0 {
		p.Cards = cards
	}
	return p
}

func generatePop(t *testing.T, p Preset, seed uint64) []Labeled {
	t.Helper()
	ls, err := Generate(p, seed, popStart)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestGenerateIsDeterministicAndValid(t *testing.T) {
	for _, p := range Presets() {
		t.Run(p.Name, func(t *testing.T) {
			p.Cards = min(p.Cards, 800)
			a, b := generatePop(t, p, 5), generatePop(t, p, 5)
			if len(a) != len(b) || len(a) == 0 {
				t.Fatalf("%d and %d transactions", len(a), len(b))
			}
			ids := map[string]bool{}
			for i := range a {
				ea, err := a[i].Tx.Encode()
				if err != nil {
					t.Fatal(err)
				}
				eb, _ := b[i].Tx.Encode()
				if !bytes.Equal(ea, eb) || a[i].Pattern != b[i].Pattern || a[i].Variant != b[i].Variant ||
					a[i].Episode != b[i].Episode || a[i].LookAlike != b[i].LookAlike {
					t.Fatalf("same seed, different transaction %d:\n%s\n%s", i, ea, eb)
				}
				tx := a[i].Tx
				if err := tx.Validate(tx.EventTime.Add(time.Minute), 0); err != nil {
					t.Fatalf("transaction %d invalid: %v", i, err)
				}
				if ids[tx.TransactionID] {
					t.Fatalf("transaction id %s twice", tx.TransactionID)
				}
				ids[tx.TransactionID] = true
				if i > 0 && a[i-1].Tx.EventTime.Sub(tx.EventTime) > 20*time.Second {
					t.Fatalf("transaction %d arrives %s after a later one", i, a[i-1].Tx.EventTime.Sub(tx.EventTime))
				}
			}
			other := generatePop(t, p, 6)
			if other[0].Tx.CardID == a[0].Tx.CardID && other[0].Tx.AmountMinor == a[0].Tx.AmountMinor {
				t.Errorf("seeds 5 and 6 start alike")
			}
		})
	}
}

func TestGeneratePrevalenceAndMix(t *testing.T) {
	for _, p := range Presets() {
		if p.Default {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			s := Summarize(generatePop(t, p, 1))
			t.Log(s)
			// Episodes are whole, so the last one overshoots the target a little.
			if s.Prevalence < p.Prevalence || s.Prevalence > 1.5*p.Prevalence+0.0005 {
				t.Errorf("prevalence %.4f, want %.4f", s.Prevalence, p.Prevalence)
			}
			for pat, w := range p.Mix {
				if w >= 0.15 && s.Episodes[pat] == 0 && p.Prevalence >= 0.01 {
					t.Errorf("no %s episode (weight %v)", pat, w)
				}
			}
			for _, tag := range []string{LookAlikeTravelArrival, LookAlikeBigPurchase, LookAlikeInAppBurst, LookAlikeIdleThenHome, LookAlikeNewDevice} {
				if s.LookAlikes[tag] == 0 {
					t.Errorf("no %s look-alike", tag)
				}
			}
		})
	}
	s := Summarize(generatePop(t, preset(t, "urban-commuters", 0), 1))
	for _, v := range []string{"card_testing/" + VariantManyMerchants, "card_testing/" + VariantOneMerchant, "account_takeover/" + VariantBurst,
		"account_takeover/" + VariantSlowEscalation, "compromised_merchant/" + VariantClonedCard, "compromised_merchant/" + VariantOnline} {
		if s.ByVariant[v] == 0 {
			t.Errorf("urban-commuters: no %s transactions (%v)", v, s.ByVariant)
		}
	}
}

// byCard groups transactions per card in event-time order.
func byCard(ls []Labeled) map[string][]Labeled {
	m := map[string][]Labeled{}
	for _, l := range ls {
		m[l.Tx.CardID] = append(m[l.Tx.CardID], l)
	}
	for _, v := range m {
		slices.SortStableFunc(v, func(a, b Labeled) int { return a.Tx.EventTime.Compare(b.Tx.EventTime) })
	}
	return m
}

// genuine reports whether l is the cardholder's own ordinary purchase.
func genuine(l Labeled) bool { return !l.Fraud() && l.Episode == "" }

// kmh is the speed from the card's last genuine in-person transaction
// before i to i.
func kmh(txs []Labeled, i int) (float64, bool) {
	for j := i - 1; j >= 0; j-- {
		if p := txs[j].Tx; p.Lat != nil && genuine(txs[j]) {
			c := txs[i].Tx
			km := haversineKm(*p.Lat, *p.Lon, *c.Lat, *c.Lon)
			return km / math.Max(c.EventTime.Sub(p.EventTime).Hours(), 1.0/3600), true
		}
	}
	return 0, false
}

func TestGenerateBehaviours(t *testing.T) {
	ls := generatePop(t, preset(t, "travellers-and-gamers", 0), 2)
	cards := byCard(ls)
	var flights, fastFlights int
	clones := map[string]bool{}
	for _, txs := range cards {
		devices := map[string]bool{}
		for i, l := range txs {
			tx := l.Tx
			online := tx.Channel == event.ChannelEcommerce
			if online != (tx.DeviceID != "" && tx.IP != "") || online == (tx.Lat != nil) {
				t.Fatalf("%s (%s): device %q, ip %q, location %v", tx.TransactionID, tx.Channel, tx.DeviceID, tx.IP, tx.Lat != nil)
			}
			if !l.Fraud() && online {
				devices[tx.DeviceID] = true
			}
			switch {
			case l.LookAlike == LookAlikeTravelArrival && tx.Lat != nil:
				if v, ok := kmh(txs, i); ok && v > 1 {
					flights++
					if v > 900 {
						t.Errorf("%s: travel arrival at %.0f km/h, faster than a plane", tx.TransactionID, v)
					}
					if v > 100 {
						fastFlights++
					}
				}
			case l.Pattern == ImpossibleTravel && !clones[l.Episode]:
				clones[l.Episode] = true
				if v, ok := kmh(txs, i); !ok || v < 900 {
					t.Errorf("%s: a copy of the card used at %.0f km/h from its last place", tx.TransactionID, v)
				}
			case l.LookAlike == LookAlikeIdleThenHome:
				for j := i - 1; j >= 0; j-- {
					if gap := tx.EventTime.Sub(txs[j].Tx.EventTime); genuine(txs[j]) {
						if gap < 26*time.Hour {
							t.Errorf("%s: idle then home only %s after the previous purchase", tx.TransactionID, gap)
						}
						break
					}
				}
			}
		}
		if len(devices) > 3 {
			t.Errorf("card %s shops from %d devices, more than the preset's 3", txs[0].Tx.CardID, len(devices))
		}
		for _, l := range txs {
			if l.Pattern == AccountTakeover && devices[l.Tx.DeviceID] {
				t.Errorf("%s: account takeover from the holder's own device", l.Tx.TransactionID)
			}
		}
	}
	if flights < 50 || fastFlights < flights/2 {
		t.Errorf("%d travel arrivals after an in-person purchase elsewhere, %d of them over 100 km/h", flights, fastFlights)
	}
	if len(clones) == 0 {
		t.Error("no card clones")
	}

	episodes := map[string][]Labeled{}
	for _, l := range ls {
		if l.Episode != "" {
			episodes[l.Episode] = append(episodes[l.Episode], l)
		}
	}
	for id, steps := range episodes {
		slices.SortStableFunc(steps, func(a, b Labeled) int { return a.Tx.EventTime.Compare(b.Tx.EventTime) })
		var fraud []Labeled
		for _, s := range steps {
			if s.Fraud() {
				fraud = append(fraud, s)
			}
		}
		if len(fraud) == 0 {
			continue // a breach whose cash-out falls after the period
		}
		span := fraud[len(fraud)-1].Tx.EventTime.Sub(fraud[0].Tx.EventTime)
		switch v := fraud[0].Variant; {
		case fraud[0].Pattern == AccountTakeover && v == VariantBurst:
			if span > time.Hour {
				t.Errorf("%s: takeover burst spans %s", id, span)
			}
		case fraud[0].Pattern == AccountTakeover && v == VariantSlowEscalation:
			first, last := fraud[0].Tx, fraud[len(fraud)-1].Tx
			if len(fraud) > 1 && (span < 20*time.Minute || float64(last.AmountMinor)/cityFX(last.MerchantCountry) <= float64(first.AmountMinor)/cityFX(first.MerchantCountry)) {
				t.Errorf("%s: slow escalation over %s from %d %s to %d %s", id, span, first.AmountMinor, first.Currency, last.AmountMinor, last.Currency)
			}
		case fraud[0].Pattern == CompromisedMerchant:
			visited := map[string]string{}
			for _, s := range steps {
				if !s.Fraud() {
					visited[s.Tx.CardID] = s.Tx.MerchantID
				}
			}
			for _, f := range fraud {
				if m, ok := visited[f.Tx.CardID]; !ok || m == f.Tx.MerchantID {
					t.Errorf("%s: card %s cashed out without a visit at the breached merchant (%q)", id, f.Tx.CardID, m)
				}
			}
		}
	}
}

func cityFX(country string) float64 {
	for _, c := range cities {
		if c.country == country {
			return c.fx
		}
	}
	return 1
}

func TestPresetValidate(t *testing.T) {
	good := preset(t, "urban-commuters", 10)
	for _, tc := range []struct {
		name   string
		change func(*Preset)
		want   string
	}{
		{"no cards", func(p *Preset) { p.Cards = 0 }, "cards"},
		{"no days", func(p *Preset) { p.Days = 0 }, "days"},
		{"prevalence", func(p *Preset) { p.Prevalence = 0.7 }, "prevalence"},
		{"rate", func(p *Preset) { p.Habits.PerDay = 0 }, "purchases a day"},
		{"share", func(p *Preset) { p.Habits.Idle = 1.5 }, "shares"},
		{"devices", func(p *Preset) { p.Habits.Devices = 0 }, "devices"},
		{"rhythm", func(p *Preset) { p.Habits.Rhythm = Rhythm{} }, "rhythm"},
		{"country", func(p *Preset) { p.Habits.Countries = []string{"XX"} }, "XX"},
		{"pattern", func(p *Preset) { p.Mix = map[Pattern]float64{"phishing": 1} }, "phishing"},
		{"empty mix", func(p *Preset) { p.Mix = nil }, "empty fraud mix"},
		{"name", func(p *Preset) { p.Name = "a b" }, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			p.Habits.Countries = slices.Clone(good.Habits.Countries)
			tc.change(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
			if _, err := Generate(p, 1, popStart); err == nil {
				t.Error("Generate accepted it")
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := PresetByName("nope"); err == nil || !strings.Contains(err.Error(), "urban-commuters") {
		t.Errorf("unknown preset: %v", err)
	}
}

func TestSummarize(t *testing.T) {
	at := func(h int) time.Time { return popStart.Add(time.Duration(h) * time.Hour) }
	ls := []Labeled{
		{Tx: event.Transaction{EventTime: at(5)}, Pattern: Normal, Retry: true},
		{Tx: event.Transaction{EventTime: at(2)}, Pattern: Normal, LookAlike: LookAlikeBigPurchase},
		{Tx: event.Transaction{EventTime: at(1)}, Pattern: AccountTakeover, Variant: VariantBurst, Episode: "e1"},
		{Tx: event.Transaction{EventTime: at(3)}, Pattern: AccountTakeover, Variant: VariantBurst, Episode: "e1"},
		{Tx: event.Transaction{EventTime: at(4)}, Pattern: Normal},
	}
	s := Summarize(ls)
	if s.Transactions != 4 || s.Fraud != 2 || s.Prevalence != 0.5 || s.Span != 3*time.Hour ||
		s.Episodes[AccountTakeover] != 1 || s.ByVariant["account_takeover/burst"] != 2 || s.LookAlikes[LookAlikeBigPurchase] != 1 {
		t.Errorf("summary %+v", s)
	}
}
