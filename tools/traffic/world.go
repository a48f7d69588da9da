package traffic

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Generate makes the traffic of population p from seed, cardholder by
// cardholder, and returns it in arrival order (event time plus a short
// delivery delay, mostly below a second), every transaction labeled with
// its pattern, variant, episode and look-alike tag. The same preset and
// seed give the same transactions, byte for byte. Event times start at
// start. p.Default presets run the original generator (Simulate).
//
// Legitimate traffic is drawn first, each card from its own random
// stream, so a population's genuine habits do not change with its fraud
// settings; fraud episodes are then added on random cards at random times
// until the share of fraudulent transactions reaches p.Prevalence.
func Generate(p Preset, seed uint64, start time.Time) ([]Labeled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Default {
		perCardPerHour := 1.0
		n := int(float64(p.Cards) * p.Days * 24 * perCardPerHour)
		return Simulate(Config{Seed: seed, Cards: p.Cards, IDPrefix: p.Name + "-" + strconv.FormatUint(seed, 10),
			CardPrefix: p.Name + "-card-"}, n, perCardPerHour, start), nil
	}
	w := newWorld(p, seed, start)
	for i := range w.holders {
		w.live(i)
	}
	w.addFraud()
	return w.finish(), nil
}

// holder is a cardholder of a population.
type holder struct {
	card
	rate    float64 // purchases a day
	devices []device
	phone   int // index of the device used for in-app purchases
	// away are the periods the holder buys nothing at home: idle, or
	// travelling (from take-off to the first purchase back home).
	away []window
	// tx are the indexes in world.out of the holder's legitimate
	// transactions, in event-time order once live returns.
	tx []int
}

type device struct{ id, ip string }

type window struct{ from, to time.Time }

// isAway reports whether the holder is idle or travelling at t.
func (h *holder) isAway(t time.Time) bool {
	for _, w := range h.away {
		if !t.Before(w.from) && t.Before(w.to) {
			return true
		}
	}
	return false
}

// world generates one population.
type world struct {
	p       Preset
	seed    uint64
	start   time.Time
	end     time.Time
	rng     *rand.Rand // fraud and population layout
	homes   []int      // cities the cards live in
	holders []holder
	perCell int
	rhythm  [24]float64 // cumulative, normalized
	out     []Labeled
	fraud   int
	nEp     map[Pattern]int
}

func newWorld(p Preset, seed uint64, start time.Time) *world {
	w := &world{p: p, seed: seed, start: start.UTC(), end: start.UTC().Add(time.Duration(p.Days * 24 * float64(time.Hour))),
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), perCell: 30, nEp: map[Pattern]int{}}
	for ci, c := range cities {
		if len(p.Habits.Countries) == 0 || slices.Contains(p.Habits.Countries, c.country) {
			w.homes = append(w.homes, ci)
		}
	}
	total := 0.0
	for h, x := range p.Habits.Rhythm {
		total += x
		w.rhythm[h] = total
	}
	for h := range w.rhythm {
		w.rhythm[h] /= total
	}
	w.holders = make([]holder, p.Cards)
	for i := range w.holders {
		w.holders[i] = w.newHolder(i)
	}
	return w
}

// cardRNG is card i's own random stream for one purpose (salt).
func (w *world) cardRNG(i int, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(w.seed^0x9e3779b97f4a7c15^salt, uint64(i)+1))
}

func (w *world) newHolder(i int) holder {
	rng := w.cardRNG(i, 0)
	h := holder{}
	c := &h.card
	c.id = w.p.Name + "-" + pad6(strconv.Itoa(i))
	c.home = w.homes[rng.IntN(len(w.homes))]
	home := cities[c.home]
	c.lat = float32(home.lat + rng.NormFloat64()*0.08)
	c.lon = float32(home.lon + rng.NormFloat64()*0.08)
	c.wealth = math.Exp(rng.NormFloat64() * 0.5)
	c.cum = taste(rng)
	for k := range c.fav {
		c.fav[k] = [2]uint16{uint16(rng.IntN(w.perCell)), uint16(rng.IntN(w.perCell))}
	}
	c.cum[numCategories-1] = 1
	h.rate = w.p.Habits.PerDay * math.Exp(rng.NormFloat64()*0.6)
	for range 1 + rng.IntN(w.p.Habits.Devices) {
		h.devices = append(h.devices, device{
			id: "dev-" + strconv.FormatUint(rng.Uint64()>>16, 36),
			ip: formatIP(home.ip, byte(rng.IntN(256)), byte(1+rng.IntN(254))),
		})
	}
	h.phone = rng.IntN(len(h.devices))
	return h
}

func (w *world) merchant(ci, k, n int) string {
	return "m-" + cities[ci].country + strconv.Itoa(ci) + "-" + categories[k].mcc + "-" + strconv.Itoa(n)
}

// localHour converts a local time of day in city ci on day d to UTC,
// with the time zone approximated from the longitude.
func (w *world) at(ci int, day int, hour float64) time.Time {
	off := math.Round(cities[ci].lon / 15)
	return w.start.Add(time.Duration((float64(day)*24 + hour - off) * float64(time.Hour)))
}

// taste is a cardholder's leaning towards categories, as cumulative
// shares: the population's weights, each scaled by a random factor.
func taste(rng *rand.Rand) (cum [numCategories]float32) {
	var sums [numCategories]float64
	total := 0.0
	for k, cat := range categories {
		total += cat.weight * rng.ExpFloat64()
		sums[k] = total
	}
	for k := range sums {
		cum[k] = float32(sums[k] / total)
	}
	return cum
}

func (w *world) drawHour(rng *rand.Rand) float64 {
	u := rng.Float64()
	for h, c := range w.rhythm {
		if u < c {
			return float64(h) + rng.Float64()
		}
	}
	return 23 + rng.Float64()
}

// stay is where a card is during [from, to).
type stay struct {
	from, to time.Time
	city     int
	arrival  time.Time // the first purchase there is made at or after it
}

// live draws holder i's legitimate transactions over the period.
func (w *world) live(i int) {
	rng := w.cardRNG(i, 0x11fe)
	h := &w.holders[i]
	hb := w.p.Habits
	days := int(math.Ceil(w.p.Days)) + 1
	var idleFrom, idleTo time.Time
	var trip []stay
	kind := rng.Float64()
	switch {
	case kind < hb.Idle:
		idleFrom = w.start.Add(time.Duration(rng.Float64() * float64(w.end.Sub(w.start)) / 2))
		idleTo = idleFrom.Add(time.Duration((26 + 34*rng.Float64()) * float64(time.Hour)))
		h.away = append(h.away, window{idleFrom, idleTo})
	case kind < hb.Idle+hb.Travellers:
		trip = w.plan(rng, h)
		h.away = append(h.away, window{trip[0].from, trip[1].arrival})
	}
	type slot struct {
		t   time.Time
		tag string
	}
	var slots []slot
	for d := -1; d < days; d++ {
		n := poisson(rng, h.rate)
		for range n {
			t := w.at(h.home, d, w.drawHour(rng))
			slots = append(slots, slot{t: t})
		}
	}
	// Travel: explicit purchases at the airport before each flight and on
	// arrival, as travellers do.
	for _, s := range trip {
		slots = append(slots, slot{t: s.from.Add(-time.Duration((1 + 1.5*rng.Float64()) * float64(time.Hour)))},
			slot{t: s.arrival, tag: LookAlikeTravelArrival})
	}
	slices.SortFunc(slots, func(a, b slot) int { return a.t.Compare(b.t) })
	arrived := map[int]bool{}
	for _, s := range slots {
		if s.t.Before(w.start) || !s.t.Before(w.end) {
			continue
		}
		if !idleFrom.IsZero() && !s.t.Before(idleFrom) && s.t.Before(idleTo) {
			continue
		}
		where, leg := h.home, -1
		for n, st := range trip {
			if !s.t.Before(st.from) && s.t.Before(st.to) {
				where, leg = st.city, n
			}
		}
		tag := s.tag
		if leg >= 0 {
			st := trip[leg]
			if s.t.Before(st.arrival) { // in the air or on the way from the airport
				continue
			}
			if tag == "" && !arrived[leg] {
				continue // the arrival purchase comes first
			}
			arrived[leg] = true
			if tag == "" && st.city != h.home {
				tag = LookAlikeTravel
			}
		}
		w.legit(rng, i, where, s.t, tag)
	}
	// Genuine big purchases and bursts come on top of the daily rhythm.
	for d := range days {
		for range poisson(rng, hb.BigPerDay) {
			t := w.at(h.home, d, 10+10*rng.Float64())
			if h.isAway(t) || !t.Before(w.end) || t.Before(w.start) {
				continue
			}
			w.bigPurchase(rng, i, t)
		}
	}
	if rng.Float64() < hb.Bursty {
		for d := range days {
			for range poisson(rng, hb.BurstsPerDay) {
				t := w.at(h.home, d, w.drawHour(rng))
				if h.isAway(t) || t.Before(w.start) {
					continue
				}
				w.burst(rng, i, t, rng.Float64() < hb.InApp)
			}
		}
	}
	slices.SortStableFunc(h.tx, func(a, b int) int { return w.out[a].Tx.EventTime.Compare(w.out[b].Tx.EventTime) })
	if !idleTo.IsZero() {
		for _, n := range h.tx {
			if !w.out[n].Tx.EventTime.Before(idleTo) {
				w.out[n].LookAlike = LookAlikeIdleThenHome
				break
			}
		}
	}
}

// plan draws a trip: an airport purchase before take-off, a flight at
// airliner speed, a stay of 1–4 days, and the same way back. The stays
// returned are the destination and home again, each with its arrival time.
func (w *world) plan(rng *rand.Rand, h *holder) []stay {
	dest := h.home
	for dest == h.home {
		dest = rng.IntN(len(cities))
	}
	span := w.end.Sub(w.start)
	depart := w.start.Add(time.Duration(rng.Float64() * float64(span) * 0.7))
	flight := func(from, to int) time.Duration {
		a, b := cities[from], cities[to]
		km := haversineKm(a.lat, a.lon, b.lat, b.lon)
		cruise := 750 + 150*rng.Float64()
		return time.Duration((km/cruise + 0.5) * float64(time.Hour))
	}
	landed := depart.Add(flight(h.home, dest))
	back := landed.Add(time.Duration((24 + 72*rng.Float64()) * float64(time.Hour)))
	home := back.Add(flight(dest, h.home))
	// From the airport into town: 30 minutes to 3 hours before the first purchase.
	toTown := func() time.Duration { return time.Duration((0.5 + 2.5*rng.Float64()) * float64(time.Hour)) }
	return []stay{
		{from: depart, to: back, city: dest, arrival: landed.Add(toTown())},
		{from: back, to: w.end.Add(48 * time.Hour), city: h.home, arrival: home.Add(toTown())},
	}
}

// legit is an ordinary purchase by holder i in city at.
func (w *world) legit(rng *rand.Rand, i, at int, t time.Time, tag string) {
	h := &w.holders[i]
	k := h.pickCategory(rng.Float64())
	cat := categories[k]
	n := int(h.fav[k][rng.IntN(2)])
	if rng.Float64() < 0.2 || at != h.home {
		n = rng.IntN(w.perCell)
	}
	merchant := w.merchant(at, k, n)
	channel := event.ChannelCardPresent
	shop := at
	switch {
	case k == catATM:
		channel = event.ChannelATM
	case rng.Float64() < min(1, cat.online*w.p.Habits.Online):
		channel = event.ChannelEcommerce
		shop = h.home
		if rng.Float64() < w.p.Habits.ForeignOnline {
			shop = otherCountry(rng, h.home, 0)
		}
		merchant = w.merchant(shop, k, rng.IntN(w.perCell))
	}
	amount := cat.median * h.wealth * math.Exp(rng.NormFloat64()*cat.sigma)
	l := w.tx(rng, h, shop, at, cat.mcc, merchant, amount, channel, t)
	if channel == event.ChannelEcommerce {
		d := h.devices[rng.IntN(len(h.devices))]
		l.Tx.DeviceID, l.Tx.IP = d.id, d.ip
		if at != h.home { // on a trip: the hotel's network
			l.Tx.IP = ipIn(rng, at)
		}
	}
	w.add(i, l, tag)
}

// bigPurchase is a genuine purchase of 10–40 times the card's habit: a
// laptop or phone, jewelry, or a flight, in a shop at home or online.
func (w *world) bigPurchase(rng *rand.Rand, i int, t time.Time) {
	h := &w.holders[i]
	k, mcc := catElectronics, categories[catElectronics].mcc
	switch rng.IntN(3) {
	case 1:
		k, mcc = catJewelry, categories[catJewelry].mcc
	case 2:
		k, mcc = catHotel, "4511" // airline tickets
	}
	online := rng.Float64() < 0.5 || mcc == "4511"
	amount := h.typical() * (10 + 30*rng.Float64())
	merchant := w.merchant(h.home, k, rng.IntN(w.perCell))
	if mcc == "4511" {
		merchant = "m-air-" + cities[h.home].country + "-" + strconv.Itoa(rng.IntN(5))
	}
	channel := event.ChannelCardPresent
	if online {
		channel = event.ChannelEcommerce
	}
	l := w.tx(rng, h, h.home, h.home, mcc, merchant, amount, channel, t)
	if online {
		d := h.devices[rng.IntN(len(h.devices))]
		l.Tx.DeviceID, l.Tx.IP = d.id, d.ip
	}
	w.add(i, l, LookAlikeBigPurchase)
}

// burst is 2–8 in-app purchases of 0.99–9.99 USD at the holder's app
// store from their phone, 20 s–4 min apart (a game session), or 2–6 transit taps of
// 1.50–4 USD at one transit operator, 2–25 minutes apart.
func (w *world) burst(rng *rand.Rand, i int, t time.Time, inApp bool) {
	h := &w.holders[i]
	if inApp {
		store := "m-app-" + strconv.Itoa(int(h.fav[catDigital][0])%3)
		d := h.devices[h.phone]
		for n := range 2 + rng.IntN(7) {
			if n > 0 {
				t = t.Add(time.Duration((20 + 220*rng.Float64()) * float64(time.Second)))
			}
			if !t.Before(w.end) || h.isAway(t) {
				return
			}
			price := []float64{99, 199, 299, 499, 999}[rng.IntN(5)]
			l := w.tx(rng, h, h.home, h.home, categories[catDigital].mcc, store, price, event.ChannelEcommerce, t)
			l.Tx.DeviceID, l.Tx.IP = d.id, d.ip
			w.add(i, l, LookAlikeInAppBurst)
		}
		return
	}
	operator := w.merchant(h.home, catTransit, int(h.fav[catTransit][0]))
	for n := range 2 + rng.IntN(5) {
		if n > 0 {
			t = t.Add(time.Duration((2 + 23*rng.Float64()) * float64(time.Minute)))
		}
		if !t.Before(w.end) || h.isAway(t) {
			return
		}
		l := w.tx(rng, h, h.home, h.home, categories[catTransit].mcc, operator, 150+250*rng.Float64(), event.ChannelCardPresent, t)
		w.add(i, l, LookAlikeTransitBurst)
	}
}

// tx builds a transaction of holder h at a merchant of country shop, the
// card being in city at; amount is in US cents, converted to the shop's
// currency. In-person transactions carry the place; device and address
// are the caller's.
func (w *world) tx(rng *rand.Rand, h *holder, shop, at int, mcc, merchant string, usCents float64, channel string, t time.Time) Labeled {
	ct := cities[shop]
	tx := event.Transaction{
		CardID:           h.id,
		AccountID:        h.account(),
		AmountMinor:      min(max(int64(math.Round(usCents*ct.fx)), 1), event.MaxAmountMinor),
		Currency:         ct.currency,
		MerchantID:       merchant,
		MerchantCategory: mcc,
		MerchantCountry:  ct.country,
		Channel:          channel,
		EventTime:        t.UTC().Truncate(time.Millisecond),
	}
	if channel != event.ChannelEcommerce {
		lat, lon := cities[at].lat, cities[at].lon
		if at == h.home {
			lat, lon = float64(h.lat), float64(h.lon)
		}
		lat += rng.NormFloat64() * 0.03
		lon += rng.NormFloat64() * 0.03
		tx.Lat, tx.Lon = &lat, &lon
	}
	return Labeled{Tx: tx, Pattern: Normal}
}

// add records a legitimate transaction of holder i.
func (w *world) add(i int, l Labeled, tag string) {
	l.LookAlike = tag
	w.holders[i].tx = append(w.holders[i].tx, len(w.out))
	w.out = append(w.out, l)
}

// finish tags first uses of devices, orders the transactions by event
// time, numbers them, and returns them in arrival order.
func (w *world) finish() []Labeled {
	slices.SortStableFunc(w.out, func(a, b Labeled) int { return a.Tx.EventTime.Compare(b.Tx.EventTime) })
	prefix := w.p.Name + "-" + strconv.FormatUint(w.seed, 10) + "-"
	type arrival struct {
		at time.Time
		n  int
	}
	arr := make([]arrival, len(w.out))
	rng := rand.New(rand.NewPCG(w.seed, 0xa11))
	used := map[string]bool{}
	for n := range w.out {
		l := &w.out[n]
		l.Tx.TransactionID = prefix + strconv.Itoa(n+1)
		if d := l.Tx.DeviceID; d != "" && !used[l.Tx.CardID+"|"+d] {
			used[l.Tx.CardID+"|"+d] = true
			if !l.Fraud() && l.LookAlike == "" {
				l.LookAlike = LookAlikeNewDevice
			}
		}
		// Delivery delay: exponential with a 200 ms median, 1 % up to 20 s.
		lag := time.Duration(rng.ExpFloat64() * float64(200*time.Millisecond) / math.Ln2)
		if rng.Float64() < 0.01 {
			lag = time.Second + time.Duration(rng.Int64N(int64(19*time.Second)))
		}
		arr[n] = arrival{at: l.Tx.EventTime.Add(lag), n: n}
	}
	slices.SortStableFunc(arr, func(a, b arrival) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.n, b.n)) })
	out := make([]Labeled, len(arr))
	for k, a := range arr {
		out[k] = w.out[a.n]
	}
	return out
}

func poisson(rng *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	// Knuth's method; means here are small.
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
