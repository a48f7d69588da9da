package traffic

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Variants of fraud patterns that come in more than one way.
const (
	VariantManyMerchants  = "many_merchants"  // card testing spread over many merchants
	VariantOneMerchant    = "one_merchant"    // card testing at a single merchant
	VariantBurst          = "burst"           // account takeover: several purchases within the hour
	VariantSlowEscalation = "slow_escalation" // account takeover: small to a few hundred dollars over hours
	VariantClonedCard     = "cloned_card"     // compromised merchant cashed out in person with a copy of the card
	VariantOnline         = "online"          // compromised merchant cashed out online
)

// Look-alikes: legitimate habits that resemble fraud.
const (
	LookAlikeTravelArrival   = "travel_arrival"    // first purchase after a flight, at the destination or back home
	LookAlikeTravel          = "travel"            // later purchases on a trip
	LookAlikeBigPurchase     = "big_purchase"      // a genuine purchase far above the card's habit
	LookAlikeInAppBurst      = "inapp_burst"       // several small in-app purchases at one app store
	LookAlikeTransitBurst    = "transit_burst"     // several transit taps in a row
	LookAlikeIdleThenHome    = "idle_then_home"    // first purchase at home after more than a day idle
	LookAlikeCloneVictimHome = "clone_victim_home" // the genuine card buying at home within 24h of its copy used far away
	LookAlikeNewDevice       = "new_device"        // the holder's first purchase from one of their devices
)

// LookAlikes lists the look-alike tags in report order.
var LookAlikes = []string{LookAlikeTravelArrival, LookAlikeTravel, LookAlikeBigPurchase, LookAlikeInAppBurst,
	LookAlikeTransitBurst, LookAlikeIdleThenHome, LookAlikeCloneVictimHome, LookAlikeNewDevice}

// Rhythm is the share of a cardholder's purchases in each local hour of
// the day (any non-negative weights; they are normalized).
type Rhythm [24]float64

// Rhythms of daily life the presets use.
var (
	// RhythmCommuter peaks before work, at lunch and on the way home.
	RhythmCommuter = Rhythm{0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 2, 4, 5, 3, 2, 3, 5, 4, 2, 2, 3, 5, 6, 5, 3, 2, 1, 0.5}
	// RhythmEvening is late risers who shop and play in the evening and night.
	RhythmEvening = Rhythm{3, 2, 1.5, 0.8, 0.3, 0.2, 0.3, 0.5, 1, 1.5, 2, 2.5, 3, 3, 3, 3, 3.5, 4, 5, 6, 6.5, 6.5, 6, 4.5}
	// RhythmDaytime is shop opening hours.
	RhythmDaytime = Rhythm{0, 0, 0, 0, 0, 0, 0.2, 0.5, 2, 4, 5, 5, 5, 5, 5, 5, 5, 4.5, 4, 3, 2, 1, 0.3, 0.1}
)

// Habits describe how the legitimate cardholders of a population pay.
type Habits struct {
	// Countries are the home countries of the cards (ISO codes of the
	// simulated cities); empty means every city.
	Countries []string
	// PerDay is the median number of purchases a day of a card; each card's
	// own rate is log-normal around it.
	PerDay float64
	// Rhythm is when in the local day purchases happen.
	Rhythm Rhythm
	// Online multiplies every merchant category's share of online
	// purchases (1 is the category's own share).
	Online float64
	// ForeignOnline is the share of online purchases made at shops abroad.
	ForeignOnline float64
	// Devices is the most devices one person shops from (each with its own
	// stable address); each card has 1 to Devices.
	Devices int
	// Idle is the share of cards that pause for 26–60 hours during the
	// period and then buy at home.
	Idle float64
	// Travellers is the share of cards whose holder flies to another city
	// during the period and buys there on arrival, and again when back.
	Travellers float64
	// BigPerDay is how often a card makes a genuine big purchase (a laptop,
	// a ring, a flight: 10–40 times its habit), per card and day.
	BigPerDay float64
	// Bursty is the share of cards that make bursts of small purchases at
	// one merchant: in-app purchases at an app store, or transit taps.
	Bursty float64
	// BurstsPerDay is how often a bursty card bursts, per day.
	BurstsPerDay float64
	// InApp is the share of bursts that are in-app purchases (the rest are
	// transit taps).
	InApp float64
}

// Preset is a named, parameterized population: its cardholders' habits,
// how much of its traffic is fraud, and which kinds. Generate makes its
// traffic from a seed.
type Preset struct {
	Name        string
	Description string
	Cards       int
	Days        float64
	// Prevalence is the share of transactions that are fraudulent; fraud
	// episodes are added until it is reached.
	Prevalence float64
	Habits     Habits
	// Mix weighs the fraud patterns: the share of episodes of each (any
	// non-negative weights; they are normalized). Patterns with a variant
	// draw each variant with equal probability.
	Mix map[Pattern]float64
	// Default marks the existing simulator (Config with its defaults),
	// generated through Simulate rather than from Habits, for comparison.
	Default bool
}

// Presets are the named populations, written from how cardholders and
// fraudsters behave rather than to fit any detector. They differ in home
// countries, rhythm, habits, prevalence (0.1 % to 3 %) and fraud mix.
func Presets() []Preset {
	return []Preset{
		{
			Name:        "default",
			Description: "the original simulator (traffic.Config defaults): cards paying about once an hour, 1 % of draws start an episode of one of the five scenarios equally",
			Cards:       2000, Days: 1, Default: true,
		},
		{
			Name: "urban-commuters",
			Description: "European and North American city dwellers: daily rhythm of commute and lunch, transit taps and in-app bursts, " +
				"some idle cards, a few trips, 1.5 % fraud of every kind",
			Cards: 4000, Days: 3, Prevalence: 0.015,
			Habits: Habits{
				Countries: []string{"US", "GB", "DE", "FR", "NL", "CA"},
				PerDay:    3, Rhythm: RhythmCommuter, Online: 1, ForeignOnline: 0.04, Devices: 2,
				Idle: 0.08, Travellers: 0.04, BigPerDay: 0.01, Bursty: 0.4, BurstsPerDay: 0.25, InApp: 0.3,
			},
			Mix: map[Pattern]float64{CardTesting: 0.25, AccountTakeover: 0.3, CompromisedMerchant: 0.1, AmountSpike: 0.15, ImpossibleTravel: 0.2},
		},
		{
			Name: "travellers-and-gamers",
			Description: "a worldwide population of frequent flyers and mobile gamers: evening rhythm, many trips, in-app bursts, " +
				"several devices each, big purchases, 3 % fraud weighted to takeovers and clones",
			Cards: 2000, Days: 3, Prevalence: 0.03,
			Habits: Habits{
				PerDay: 2.5, Rhythm: RhythmEvening, Online: 2, ForeignOnline: 0.12, Devices: 3,
				Idle: 0.05, Travellers: 0.25, BigPerDay: 0.04, Bursty: 0.3, BurstsPerDay: 0.35, InApp: 0.9,
			},
			Mix: map[Pattern]float64{CardTesting: 0.2, AccountTakeover: 0.35, CompromisedMerchant: 0.1, AmountSpike: 0.1, ImpossibleTravel: 0.25},
		},
		{
			Name: "low-prevalence-retail",
			Description: "shoppers in Latin America, Asia, Africa and Oceania paying in shops in opening hours: mostly in person, one device, " +
				"many idle cards, big purchases, 0.1 % fraud mostly from breached merchants and spikes",
			Cards: 6000, Days: 3, Prevalence: 0.001,
			Habits: Habits{
				Countries: []string{"BR", "MX", "IN", "JP", "SG", "AU", "ZA"},
				PerDay:    1.5, Rhythm: RhythmDaytime, Online: 0.5, ForeignOnline: 0.02, Devices: 1,
				Idle: 0.3, Travellers: 0.02, BigPerDay: 0.02, Bursty: 0.1, BurstsPerDay: 0.3, InApp: 0.5,
			},
			Mix: map[Pattern]float64{CardTesting: 0.15, AccountTakeover: 0.15, CompromisedMerchant: 0.35, AmountSpike: 0.25, ImpossibleTravel: 0.1},
		},
	}
}

// PresetNames lists the presets' names.
func PresetNames() []string {
	var out []string
	for _, p := range Presets() {
		out = append(out, p.Name)
	}
	return out
}

// PresetByName returns the preset called name.
func PresetByName(name string) (Preset, error) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("unknown population %q (want one of %s)", name, strings.Join(PresetNames(), ", "))
}

// Validate reports the first setting Generate cannot use.
func (p Preset) Validate() error {
	h := p.Habits
	share := func(x float64) bool { return x >= 0 && x <= 1 }
	switch {
	case p.Name == "" || strings.TrimLeft(p.Name, idChars) != "":
		return fmt.Errorf("population name %q must be non-empty, of %s", p.Name, "A–Z a–z 0–9 _ - . :")
	case p.Cards < 1:
		return fmt.Errorf("population %s: %d cards, want at least 1", p.Name, p.Cards)
	case !(p.Days > 0) || p.Days > 366:
		return fmt.Errorf("population %s: %v days, want more than 0 and at most 366", p.Name, p.Days)
	case p.Default:
		return nil
	case !(p.Prevalence >= 0 && p.Prevalence < 0.5):
		return fmt.Errorf("population %s: prevalence %v, want at least 0 and below 0.5", p.Name, p.Prevalence)
	case !(h.PerDay > 0):
		return fmt.Errorf("population %s: %v purchases a day, want more than 0", p.Name, h.PerDay)
	case !(h.Online >= 0) || !share(h.ForeignOnline) || !share(h.Idle) || !share(h.Travellers) || !share(h.Bursty) || !share(h.InApp):
		return fmt.Errorf("population %s: online %v must be ≥ 0; foreign online %v, idle %v, travellers %v, bursty %v and in-app %v must be shares in [0, 1]",
			p.Name, h.Online, h.ForeignOnline, h.Idle, h.Travellers, h.Bursty, h.InApp)
	case h.Idle+h.Travellers > 1:
		return fmt.Errorf("population %s: idle %v and travellers %v add up to more than 1", p.Name, h.Idle, h.Travellers)
	case !(h.BigPerDay >= 0) || !(h.BurstsPerDay >= 0):
		return fmt.Errorf("population %s: big purchases %v and bursts %v a day must be ≥ 0", p.Name, h.BigPerDay, h.BurstsPerDay)
	case h.Devices < 1:
		return fmt.Errorf("population %s: %d devices, want at least 1", p.Name, h.Devices)
	}
	rhythm := 0.0
	for _, w := range h.Rhythm {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("population %s: rhythm weight %v, want finite and ≥ 0", p.Name, w)
		}
		rhythm += w
	}
	if rhythm == 0 {
		return fmt.Errorf("population %s: rhythm is all zero", p.Name)
	}
	for _, c := range h.Countries {
		if !slices.ContainsFunc(cities, func(x city) bool { return x.country == c }) {
			return fmt.Errorf("population %s: no simulated city in country %q", p.Name, c)
		}
	}
	total := 0.0
	for pat, w := range p.Mix {
		if !slices.Contains(Scenarios, pat) {
			return fmt.Errorf("population %s: unknown pattern %q in the fraud mix (want one of %v)", p.Name, pat, Scenarios)
		}
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("population %s: weight %v of %s, want finite and ≥ 0", p.Name, w, pat)
		}
		total += w
	}
	if p.Prevalence > 0 && total == 0 {
		return fmt.Errorf("population %s: prevalence %v but an empty fraud mix", p.Name, p.Prevalence)
	}
	return nil
}

// Summary counts what Generate made.
type Summary struct {
	Transactions int
	Fraud        int
	Prevalence   float64
	ByPattern    map[Pattern]int
	Episodes     map[Pattern]int
	ByVariant    map[string]int // fraud transactions per "pattern/variant"
	LookAlikes   map[string]int // legitimate transactions per look-alike tag
	Span         time.Duration  // first to last event time
}

// Summarize counts ls.
func Summarize(ls []Labeled) Summary {
	s := Summary{ByPattern: map[Pattern]int{}, Episodes: map[Pattern]int{}, ByVariant: map[string]int{}, LookAlikes: map[string]int{}}
	episodes := map[string]bool{}
	var first, last time.Time
	for _, l := range ls {
		if l.Retry {
			continue
		}
		s.Transactions++
		s.ByPattern[l.Pattern]++
		if s.Transactions == 1 || l.Tx.EventTime.Before(first) {
			first = l.Tx.EventTime
		}
		if l.Tx.EventTime.After(last) {
			last = l.Tx.EventTime
		}
		if l.Fraud() {
			s.Fraud++
			if l.Variant != "" {
				s.ByVariant[string(l.Pattern)+"/"+l.Variant]++
			}
			if l.Episode != "" && !episodes[l.Episode] {
				episodes[l.Episode] = true
				s.Episodes[l.Pattern]++
			}
		} else if l.LookAlike != "" {
			s.LookAlikes[l.LookAlike]++
		}
	}
	if s.Transactions > 0 {
		s.Prevalence = float64(s.Fraud) / float64(s.Transactions)
		s.Span = last.Sub(first)
	}
	return s
}

// String is a one-line summary.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d transactions over %s, %d fraud (%.2f %%):", s.Transactions, s.Span.Round(time.Hour), s.Fraud, 100*s.Prevalence)
	pats := make([]string, 0, len(s.Episodes))
	for p := range s.Episodes {
		pats = append(pats, string(p))
	}
	sort.Strings(pats)
	for _, p := range pats {
		fmt.Fprintf(&b, " %s %d tx/%d ep;", p, s.ByPattern[Pattern(p)], s.Episodes[Pattern(p)])
	}
	return strings.TrimSuffix(b.String(), ";")
}
