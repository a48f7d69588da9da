package traffic

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// addFraud adds episodes drawn from the preset's mix on random cards at
// random times until fraudulent transactions make up p.Prevalence of all.
func (w *world) addFraud() {
	if w.p.Prevalence <= 0 {
		return
	}
	var pats []Pattern
	var cum []float64
	total := 0.0
	for _, p := range Scenarios { // Scenarios order, for determinism
		if x := w.p.Mix[p]; x > 0 {
			total += x
			pats = append(pats, p)
			cum = append(cum, total)
		}
	}
	// Breached merchants add legitimate visits too, so the share is
	// checked against everything generated so far.
	for tries := 0; float64(w.fraud) < w.p.Prevalence*float64(len(w.out)) && tries < 1_000_000; tries++ {
		u := w.rng.Float64() * total
		k := sort.SearchFloat64s(cum, u)
		if k == len(pats) {
			k--
		}
		w.episode(pats[k])
	}
}

// randomTime is an event time in the period, leaving room for an episode
// of the given length before its end.
func (w *world) randomTime(room time.Duration) time.Time {
	span := w.end.Sub(w.start) - room
	if span <= 0 {
		return w.start
	}
	return w.start.Add(time.Duration(w.rng.Int64N(int64(span))))
}

// victim draws a card with at least one genuine transaction.
func (w *world) victim() int {
	for range 1000 {
		if i := w.rng.IntN(len(w.holders)); len(w.holders[i].tx) > 0 {
			return i
		}
	}
	return w.rng.IntN(len(w.holders))
}

// ring is a fraudster's device and address: a residential proxy in the
// card's home country half the time, an address abroad otherwise.
func (w *world) ring(home int) (dev, ip string) {
	dev = "dev-x" + strconv.FormatUint(w.rng.Uint64()>>20, 36)
	at := home
	if w.rng.IntN(2) == 0 {
		at = otherCountry(w.rng, home, 0)
	}
	return dev, ipIn(w.rng, at)
}

// onlineShop is a country where an online merchant sits: the card's own
// country half the time.
func (w *world) onlineShop(home int) int {
	if w.rng.IntN(2) == 0 {
		return home
	}
	return otherCountry(w.rng, home, 0)
}

// episode adds one episode of pattern p.
func (w *world) episode(p Pattern) {
	w.nEp[p]++
	id := w.p.Name + "-" + string(p) + "-" + strconv.Itoa(w.nEp[p])
	var steps []Labeled
	switch p {
	case CardTesting:
		steps = w.cardTesting(w.victim())
	case AccountTakeover:
		steps = w.takeover(w.victim())
	case CompromisedMerchant:
		steps = w.compromisedMerchant()
	case AmountSpike:
		steps = w.spike(w.victim())
	case ImpossibleTravel:
		steps = w.clone()
	}
	for _, s := range steps {
		if !s.Tx.EventTime.Before(w.end) {
			continue // the period ends before the episode does
		}
		s.Episode = id
		if s.Fraud() {
			w.fraud++
		}
		w.out = append(w.out, s)
	}
}

func (w *world) fraudTx(h *holder, p Pattern, variant string, shop, at int, mcc, merchant string, usCents float64, channel string, t time.Time) Labeled {
	l := w.tx(w.rng, h, shop, at, mcc, merchant, usCents, channel, t)
	l.Pattern, l.Variant = p, variant
	return l
}

// cardTesting checks that a stolen card number works with tiny online
// charges of 0.50–3 USD from one device: either 5–15 at as many
// merchants, 10 s–2 min apart, or 8–20 at one merchant, 1–8 s apart.
func (w *world) cardTesting(i int) []Labeled {
	h := &w.holders[i]
	dev, ip := w.ring(h.home)
	t := w.randomTime(time.Hour)
	var out []Labeled
	if w.rng.IntN(2) == 0 {
		for n := range 5 + w.rng.IntN(11) {
			if n > 0 {
				t = t.Add(time.Duration((10 + 110*w.rng.Float64()) * float64(time.Second)))
			}
			k := []int{catDigital, catMisc, catFastFood}[w.rng.IntN(3)]
			shop := w.onlineShop(h.home)
			l := w.fraudTx(h, CardTesting, VariantManyMerchants, shop, shop, categories[k].mcc, w.merchant(shop, k, w.rng.IntN(w.perCell)),
				50+250*w.rng.Float64(), event.ChannelEcommerce, t)
			l.Tx.DeviceID, l.Tx.IP = dev, ip
			out = append(out, l)
		}
		return out
	}
	k := []int{catDigital, catMisc}[w.rng.IntN(2)]
	shop := w.onlineShop(h.home)
	merchant := w.merchant(shop, k, w.rng.IntN(w.perCell))
	for n := range 8 + w.rng.IntN(13) {
		if n > 0 {
			t = t.Add(time.Duration((1 + 7*w.rng.Float64()) * float64(time.Second)))
		}
		l := w.fraudTx(h, CardTesting, VariantOneMerchant, shop, shop, categories[k].mcc, merchant, 50+250*w.rng.Float64(), event.ChannelEcommerce, t)
		l.Tx.DeviceID, l.Tx.IP = dev, ip
		out = append(out, l)
	}
	return out
}

// takeover: the account's credentials are stolen and the fraudster shops
// online from a new device and address. Either 3–6 purchases of 1–5 times
// the card's habit within the hour (2–10 minutes apart) at electronics,
// digital-goods and gift-card (miscellaneous) merchants, or a slow
// escalation: 4–8 purchases 20 minutes to 3 hours apart, from 5–20 USD
// growing 1.6–2.2 times each step up to a few hundred dollars.
func (w *world) takeover(i int) []Labeled {
	h := &w.holders[i]
	dev, ip := w.ring(h.home)
	kinds := []int{catElectronics, catDigital, catMisc}
	var out []Labeled
	if w.rng.IntN(2) == 0 {
		t := w.randomTime(time.Hour)
		for n := range 3 + w.rng.IntN(4) {
			if n > 0 {
				t = t.Add(time.Duration((2 + 8*w.rng.Float64()) * float64(time.Minute)))
			}
			k := kinds[w.rng.IntN(len(kinds))]
			shop := w.onlineShop(h.home)
			l := w.fraudTx(h, AccountTakeover, VariantBurst, shop, shop, categories[k].mcc, w.merchant(shop, k, w.rng.IntN(w.perCell)),
				h.typical()*(1+4*w.rng.Float64()), event.ChannelEcommerce, t)
			l.Tx.DeviceID, l.Tx.IP = dev, ip
			out = append(out, l)
		}
		return out
	}
	t := w.randomTime(12 * time.Hour)
	amount := 500 + 1500*w.rng.Float64()
	for n := range 4 + w.rng.IntN(5) {
		if n > 0 {
			t = t.Add(time.Duration((20 + 160*w.rng.Float64()) * float64(time.Minute)))
			amount = min(amount*(1.6+0.6*w.rng.Float64()), 30000+30000*w.rng.Float64())
		}
		k := kinds[w.rng.IntN(len(kinds))]
		shop := w.onlineShop(h.home)
		l := w.fraudTx(h, AccountTakeover, VariantSlowEscalation, shop, shop, categories[k].mcc, w.merchant(shop, k, w.rng.IntN(w.perCell)),
			amount, event.ChannelEcommerce, t)
		l.Tx.DeviceID, l.Tx.IP = dev, ip
		out = append(out, l)
	}
	return out
}

// compromisedMerchant: a fuel station, restaurant, grocery or shop is
// breached (a skimmer, or script on its checkout page). Over 2–12 hours
// 8–25 of the city's cards pay there in person (legitimate, labeled
// normal with the episode's id); 2 to 36 hours after its visit, each card
// is cashed out once or twice: in person with a copy of the card in
// another city, or online from the ring's devices.
func (w *world) compromisedMerchant() []Labeled {
	home := w.homes[w.rng.IntN(len(w.homes))]
	var locals []int
	for i := range w.holders {
		if w.holders[i].home == home {
			locals = append(locals, i)
		}
	}
	if len(locals) == 0 {
		return nil
	}
	k := []int{catFuel, catRestaurant, catGrocery, catMisc}[w.rng.IntN(4)]
	breached := w.merchant(home, k, w.rng.IntN(w.perCell))
	t0 := w.randomTime(24 * time.Hour)
	n := min(8+w.rng.IntN(18), len(locals))
	variant := VariantClonedCard
	if w.rng.IntN(2) == 0 {
		variant = VariantOnline
	}
	dev, ip := w.ring(home)
	var out []Labeled
	for _, j := range w.rng.Perm(len(locals))[:n] {
		h := &w.holders[locals[j]]
		visit := t0.Add(time.Duration(w.rng.Float64() * (2 + 10*w.rng.Float64()) * float64(time.Hour)))
		if h.isAway(visit) {
			continue // idle or abroad: not among the merchant's customers that day
		}
		cat := categories[k]
		l := w.tx(w.rng, h, home, home, cat.mcc, breached, cat.median*h.wealth*math.Exp(w.rng.NormFloat64()*cat.sigma), event.ChannelCardPresent, visit)
		out = append(out, l)
		t := visit.Add(time.Duration((2 + 34*w.rng.Float64()) * float64(time.Hour)))
		for m := range 1 + w.rng.IntN(2) {
			if m > 0 {
				t = t.Add(time.Duration((5 + 55*w.rng.Float64()) * float64(time.Minute)))
			}
			amount := h.typical() * (3 + 12*w.rng.Float64())
			if variant == VariantClonedCard {
				at := otherCountry(w.rng, home, 0)
				if w.rng.IntN(2) == 0 { // another city of the same country when there is one
					for _, ci := range w.rng.Perm(len(cities)) {
						if ci != home && cities[ci].country == cities[home].country {
							at = ci
						}
					}
				}
				kk := []int{catElectronics, catDepartment, catJewelry}[w.rng.IntN(3)]
				out = append(out, w.fraudTx(h, CompromisedMerchant, variant, at, at, categories[kk].mcc,
					w.merchant(at, kk, w.rng.IntN(w.perCell)), max(amount, 5000), event.ChannelCardPresent, t))
				continue
			}
			kk := []int{catElectronics, catDigital, catMisc}[w.rng.IntN(3)]
			shop := w.onlineShop(home)
			l := w.fraudTx(h, CompromisedMerchant, variant, shop, shop, categories[kk].mcc, w.merchant(shop, kk, w.rng.IntN(w.perCell)),
				max(amount, 5000), event.ChannelEcommerce, t)
			l.Tx.DeviceID, l.Tx.IP = dev, ip
			out = append(out, l)
		}
	}
	return out
}

// spike: one purchase of 20–60 times the card's habit at an electronics or
// jewelry merchant at home, in a shop with a stolen card or online from a
// new device with an address in the card's country.
func (w *world) spike(i int) []Labeled {
	h := &w.holders[i]
	k := catElectronics
	if w.rng.IntN(3) == 0 {
		k = catJewelry
	}
	t := w.randomTime(0)
	amount := h.typical() * (20 + 40*w.rng.Float64())
	merchant := w.merchant(h.home, k, w.rng.IntN(w.perCell))
	if w.rng.IntN(5) < 2 {
		l := w.fraudTx(h, AmountSpike, "", h.home, h.home, categories[k].mcc, merchant, amount, event.ChannelCardPresent, t)
		return []Labeled{l}
	}
	l := w.fraudTx(h, AmountSpike, "", h.home, h.home, categories[k].mcc, merchant, amount, event.ChannelEcommerce, t)
	l.Tx.DeviceID = "dev-x" + strconv.FormatUint(w.rng.Uint64()>>20, 36)
	l.Tx.IP = ipIn(w.rng, h.home)
	return []Labeled{l}
}

// clone: a copy of the card (skimmed magstripe) is used in person in a
// city at least 2,000 km away, 1–3 times over 1–4 hours, starting 10
// minutes to 3 hours after a genuine purchase at home, while the genuine
// card keeps buying at home: its home purchases in the 24 hours after the
// first use of the copy are tagged as look-alikes.
func (w *world) clone() []Labeled {
	var h *holder
	var anchors []int
	for try := 0; len(anchors) == 0 && try < 100; try++ {
		h = &w.holders[w.victim()]
		for _, n := range h.tx {
			if l := w.out[n]; l.Tx.Channel == event.ChannelCardPresent && l.Tx.MerchantCountry == cities[h.home].country && l.LookAlike == "" {
				anchors = append(anchors, n)
			}
		}
	}
	t := w.randomTime(4 * time.Hour)
	if len(anchors) > 0 {
		t = w.out[anchors[w.rng.IntN(len(anchors))]].Tx.EventTime.Add(time.Duration((10 + 170*w.rng.Float64()) * float64(time.Minute)))
	}
	far := otherCountry(w.rng, h.home, 2000)
	var out []Labeled
	first := t
	for n := range 1 + w.rng.IntN(3) {
		if n > 0 {
			t = t.Add(time.Duration((20 + 100*w.rng.Float64()) * float64(time.Minute)))
		}
		k := []int{catElectronics, catDepartment, catATM, catJewelry}[w.rng.IntN(4)]
		channel := event.ChannelCardPresent
		if k == catATM {
			channel = event.ChannelATM
		}
		out = append(out, w.fraudTx(h, ImpossibleTravel, "", far, far, categories[k].mcc, w.merchant(far, k, w.rng.IntN(w.perCell)),
			categories[k].median*h.wealth*(1+3*w.rng.Float64()), channel, t))
	}
	for _, n := range h.tx {
		l := &w.out[n]
		if at := l.Tx.EventTime; !at.Before(first) && at.Before(first.Add(24*time.Hour)) && l.Tx.MerchantCountry == cities[h.home].country && l.LookAlike == "" {
			l.LookAlike = LookAlikeCloneVictimHome
		}
	}
	return out
}
