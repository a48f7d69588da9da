package traffic

import (
	"math"
	"strconv"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// episode starts an episode of scenario p arriving at now: it returns the
// first step and schedules the others, each arriving its own delay after
// its event time.
func (g *Generator) episode(p Pattern, now time.Time) Labeled {
	g.stats.Episodes[p]++
	id := string(p) + "-" + strconv.Itoa(g.stats.Episodes[p])
	start := now.Add(-g.lag())
	var steps []Labeled
	switch p {
	case CardTesting:
		steps = g.cardTesting(g.randomCard(), start)
	case AccountTakeover:
		steps = g.accountTakeover(g.randomCard(), start)
	case ImpossibleTravel:
		steps = g.impossibleTravel(g.randomCard(), start)
	case AmountSpike:
		steps = g.amountSpike(g.randomCard(), start)
	case CompromisedMerchant:
		steps = g.compromisedMerchant(g.randomCard().home, start)
	}
	for i := range steps {
		steps[i].Episode = id
	}
	for _, s := range steps[1:] {
		g.schedule(s.Tx.EventTime.Add(g.lag()), s)
	}
	return steps[0]
}

func (g *Generator) randomCard() *card { return &g.pop.cards[g.rng.IntN(len(g.pop.cards))] }

// fraudster is a device and an address abroad, as a fraud ring uses them.
func (g *Generator) fraudster(home int) (device, ip string, at int) {
	at = otherCountry(g.rng, home, 0)
	return "dev-x" + strconv.FormatUint(g.rng.Uint64()>>20, 36), ipIn(g.rng, at), at
}

// cardTesting: 8–20 charges of 0.50–2.00 USD, 1–6 s apart, at one
// digital-goods or miscellaneous merchant abroad, from the tester's device.
func (g *Generator) cardTesting(c *card, t time.Time) []Labeled {
	device, ip, at := g.fraudster(c.home)
	k := catDigital
	if g.rng.IntN(3) == 0 {
		k = catMisc
	}
	merchant := g.pop.merchants[at][k][g.rng.IntN(len(g.pop.merchants[at][k]))]
	out := make([]Labeled, 8+g.rng.IntN(13))
	for i := range out {
		if i > 0 {
			t = t.Add(g.gap(time.Second, 6*time.Second))
		}
		tx := g.tx(c, at, k, merchant, float64(50+g.rng.IntN(151)), event.ChannelEcommerce, t)
		tx.DeviceID, tx.IP = device, ip
		out[i] = Labeled{Tx: tx, Pattern: CardTesting}
	}
	return out
}

// accountTakeover: after the takeover the fraudster shops online from a
// new device in another country: 3–6 purchases at electronics, jewelry or
// digital-goods merchants there, 10–90 s apart, starting at twice the
// card's habit and doubling each time.
func (g *Generator) accountTakeover(c *card, t time.Time) []Labeled {
	device, ip, at := g.fraudster(c.home)
	amount := 2 * c.typical()
	kinds := [...]int{catElectronics, catJewelry, catDigital}
	out := make([]Labeled, 3+g.rng.IntN(4))
	for i := range out {
		if i > 0 {
			t = t.Add(g.gap(10*time.Second, 90*time.Second))
			amount *= 2
		}
		k := kinds[g.rng.IntN(len(kinds))]
		merchant := g.pop.merchants[at][k][g.rng.IntN(len(g.pop.merchants[at][k]))]
		tx := g.tx(c, at, k, merchant, amount*(0.9+0.2*g.rng.Float64()), event.ChannelEcommerce, t)
		tx.DeviceID, tx.IP = device, ip
		out[i] = Labeled{Tx: tx, Pattern: AccountTakeover}
	}
	return out
}

// impossibleTravel: an ordinary card-present purchase at home (legitimate),
// then 1–2 card-present purchases in a city at least 2,000 km away,
// 30 s–5 min later: a cloned card used abroad.
func (g *Generator) impossibleTravel(c *card, t time.Time) []Labeled {
	// Only a purchase in person says where the card was.
	first := g.normal(c, t)
	for try := 0; first.Tx.Channel != event.ChannelCardPresent || first.Tx.MerchantCountry != cities[c.home].country; try++ {
		if try == 10 {
			pool := g.pop.merchants[c.home][catGrocery]
			first.Tx = g.tx(c, c.home, catGrocery, pool[c.fav[catGrocery][0]], categories[catGrocery].median*c.wealth, event.ChannelCardPresent, t)
			break
		}
		first = g.normal(c, t)
	}
	out := []Labeled{first}
	far := otherCountry(g.rng, c.home, 2000)
	for range 1 + g.rng.IntN(2) {
		t = t.Add(g.gap(30*time.Second, 5*time.Minute))
		k := c.pickCategory(g.rng.Float64())
		if k == catATM || k == catTransit {
			k = catDepartment
		}
		cat := categories[k]
		merchant := g.pop.merchants[far][k][g.rng.IntN(len(g.pop.merchants[far][k]))]
		amount := cat.median * c.wealth * (1 + 2*g.rng.Float64())
		out = append(out, Labeled{Tx: g.tx(c, far, k, merchant, amount, event.ChannelCardPresent, t), Pattern: ImpossibleTravel})
	}
	return out
}

// amountSpike: one purchase at home, in person or online from the card's
// own device, 20–60 times the card's habit at an electronics or jewelry
// merchant: a stolen card, or a stolen account on a trusted device.
func (g *Generator) amountSpike(c *card, t time.Time) []Labeled {
	k := catElectronics
	if g.rng.IntN(3) == 0 {
		k = catJewelry
	}
	channel := event.ChannelCardPresent
	if g.rng.IntN(2) == 0 {
		channel = event.ChannelEcommerce
	}
	merchant := g.pop.merchants[c.home][k][g.rng.IntN(len(g.pop.merchants[c.home][k]))]
	amount := c.typical() * float64(20+g.rng.IntN(41))
	return []Labeled{{Tx: g.tx(c, c.home, k, merchant, amount, channel, t), Pattern: AmountSpike}}
}

// compromisedMerchant: a fuel station, restaurant or shop in city home is
// breached. 6–12 of the city's cards buy there in person, 2–20 s apart
// (legitimate, labeled normal); 1–5 minutes after the last of them a fraud
// ring charges each of those cards 5–20 times its habit at one merchant
// abroad, online from one device, 1–8 s apart.
func (g *Generator) compromisedMerchant(home int, t time.Time) []Labeled {
	locals := g.pop.byCity[home]
	kinds := [...]int{catFuel, catRestaurant, catMisc}
	k := kinds[g.rng.IntN(len(kinds))]
	breached := g.pop.merchants[home][k][g.rng.IntN(len(g.pop.merchants[home][k]))]
	n := min(6+g.rng.IntN(7), len(locals))
	victims := make([]*card, 0, n)
	for _, i := range g.rng.Perm(len(locals))[:n] {
		victims = append(victims, &g.pop.cards[locals[i]])
	}
	out := make([]Labeled, 0, 2*n)
	cat := categories[k]
	for i, c := range victims {
		if i > 0 {
			t = t.Add(g.gap(2*time.Second, 20*time.Second))
		}
		amount := cat.median * c.wealth * math.Exp(g.rng.NormFloat64()*cat.sigma)
		out = append(out, Labeled{Tx: g.tx(c, home, k, breached, amount, event.ChannelCardPresent, t), Pattern: Normal})
	}
	device, ip, at := g.fraudster(home)
	cashout := g.pop.fraudster[at]
	t = t.Add(g.gap(time.Minute, 5*time.Minute))
	for i, c := range victims {
		if i > 0 {
			t = t.Add(g.gap(time.Second, 8*time.Second))
		}
		tx := g.tx(c, at, catElectronics, cashout, c.typical()*float64(5+g.rng.IntN(16)), event.ChannelEcommerce, t)
		tx.DeviceID, tx.IP = device, ip
		out = append(out, Labeled{Tx: tx, Pattern: CompromisedMerchant})
	}
	return out
}
