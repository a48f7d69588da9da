// Package traffic simulates card payments with their ground truth, to drive
// the pipeline and to measure how well it detects fraud.
//
// The world is a population of cards, each with a home city, a device and
// an address it shops online from, and a spending profile (how often it buys
// in each merchant category and how much, scaled by the cardholder's
// wealth), and merchants per city and category, among which every card has
// favourites. Ordinary traffic is cardholders shopping near home.
//
// Fraud comes in episodes of a scenario, each started with a configured
// probability per transaction drawn:
//
//   - card_testing: 8–20 tiny e-commerce charges on one card at a
//     digital-goods or miscellaneous merchant, from a foreign device and
//     address, one every few seconds.
//   - account_takeover: the account is taken over; from then on the
//     fraudster shops online from a new device in another country, 3–6
//     purchases of rising amounts (2× the card's habit, doubling each time).
//   - impossible_travel: an ordinary purchase at home (labeled normal),
//     then 1–2 card-present purchases in a city at least 2,000 km away
//     minutes later.
//   - amount_spike: one purchase at home 20–60 times the card's habit at an
//     electronics or jewelry merchant.
//   - compromised_merchant: a merchant is breached (a skimmer at the till,
//     or script on its checkout page). 6–12 local cards buy there, legitimate
//     purchases labeled normal with the episode's id; minutes later a fraud
//     ring cashes those same cards out in a burst of high e-commerce charges
//     at one merchant abroad, from one device. Those charges are labeled
//     compromised_merchant. The scenario has a per-card signal (a foreign
//     merchant, a new device, a large amount) and a merchant-level one (many
//     cards at one merchant within a minute, all seen earlier at one common
//     point of purchase).
//
// Episodes unfold in event time, interleaved with other traffic. Each
// transaction reaches the sender some delay after it happened, drawn from a
// configurable distribution, so arrivals are out of event-time order and a
// few are minutes late. A configurable share of transactions is sent again a
// moment later, as a client that timed out would: the same transaction_id
// and the same body, labeled as a retry.
//
// The generator is deterministic for a seed: the same seed and the same
// sequence of arrival times give the same transactions, byte for byte.
// It only makes transactions; Sender and tools/loadgen send them.
package traffic

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Pattern names the behaviour that produced a transaction.
type Pattern string

// Patterns the generator mixes in. Only Normal is legitimate.
const (
	Normal              Pattern = "normal"
	CardTesting         Pattern = "card_testing"         // many tiny e-commerce charges in minutes
	AccountTakeover     Pattern = "account_takeover"     // new device and country, rising amounts
	ImpossibleTravel    Pattern = "impossible_travel"    // card present far from the last place, minutes later
	AmountSpike         Pattern = "amount_spike"         // one purchase far above the card's habit
	CompromisedMerchant Pattern = "compromised_merchant" // cash-out of cards seen at a breached merchant
)

// Scenarios lists the fraud patterns in the order the generator draws them.
var Scenarios = []Pattern{CardTesting, AccountTakeover, ImpossibleTravel, AmountSpike, CompromisedMerchant}

// Labeled is a generated transaction with its ground truth.
type Labeled struct {
	Tx      event.Transaction
	Pattern Pattern
	// Episode identifies the fraud episode the transaction belongs to, such
	// as "card_testing-17"; empty for ordinary traffic. Legitimate steps of
	// an episode (the purchase at home before impossible travel, purchases
	// at a merchant before it is found compromised) carry it with Normal.
	Episode string
	// Retry marks a resend of an earlier transaction: same id, same body.
	Retry bool
	// Variant names how a fraud episode was carried out, for patterns that
	// come in more than one way (see the Variant constants); empty when the
	// pattern has one way or for ordinary traffic. Only populations
	// (Generate) set it.
	Variant string
	// LookAlike tags a legitimate transaction that resembles fraud (see the
	// LookAlike constants), so false alerts on genuine habits can be
	// counted; empty otherwise. Only populations (Generate) set it.
	LookAlike string
}

// Fraud reports whether the transaction is fraudulent.
func (l Labeled) Fraud() bool { return l.Pattern != Normal }

// Config shapes the simulated population and traffic. The zero value of
// every field but Seed takes its default.
type Config struct {
	Seed      uint64 // same seed, same stream
	Cards     int    // distinct cards; default 2000
	Merchants int    // merchants over all cities and categories; default 5000
	// FraudRate is the probability that a drawn transaction starts a fraud
	// episode, shared equally by the scenarios; default 0.01. Ignored when
	// Scenarios is not nil.
	FraudRate float64
	// Scenarios, when not nil, is the probability per drawn transaction of
	// starting an episode of each scenario; missing scenarios do not occur.
	Scenarios map[Pattern]float64
	// OutOfOrder is the largest amount by which an event time lags its
	// arrival, uniformly distributed, when Delay is zero; default 2s.
	OutOfOrder time.Duration
	// Delay is the distribution of arrival delays; see Delay.
	Delay Delay
	// RetryRate is the probability that a transaction is sent again;
	// default 0.
	RetryRate float64
	// RetryAfter is the largest delay before a retry is sent, uniform from
	// 50ms; default 2s.
	RetryAfter time.Duration
	// EpisodeScale multiplies the time between the steps of an episode:
	// below 1 a short run sees whole episodes; default 1.
	EpisodeScale float64
	IDPrefix     string // prefix of transaction ids, to keep runs apart; default "sim"
	// CardPrefix starts every card id, followed by the card's number;
	// default "card-". A card's home, habits and device follow from the
	// seed, so traffic of two seeds sent to one pipeline needs two card
	// prefixes: otherwise each card id belongs to two cardholders in two
	// cities, and the scorer rightly sees every such card jump between
	// countries (impossible travel, new country) within minutes.
	CardPrefix string
}

// Delay is the distribution of how long after it happened a transaction
// reaches the sender: most within a few hundred milliseconds (exponential
// with median Median), a TailFraction uniformly between 1s and TailMax, and
// a LateFraction uniformly between 1m and LateMax.
type Delay struct {
	Median       time.Duration
	TailFraction float64
	TailMax      time.Duration
	LateFraction float64
	LateMax      time.Duration
}

func (d Delay) zero() bool { return d == Delay{} }

func (c *Config) defaults() {
	if c.Cards <= 0 {
		c.Cards = 2000
	}
	if c.Merchants <= 0 {
		c.Merchants = 5000
	}
	if c.FraudRate <= 0 {
		c.FraudRate = 0.01
	}
	if c.OutOfOrder <= 0 {
		c.OutOfOrder = 2 * time.Second
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 2 * time.Second
	}
	if c.EpisodeScale <= 0 {
		c.EpisodeScale = 1
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "sim"
	}
	if c.CardPrefix == "" {
		c.CardPrefix = "card-"
	}
}

// Validate reports the first setting New would have to ignore or clamp.
func (c Config) Validate() error {
	total := 0.0
	for p, r := range c.Scenarios {
		known := false
		for _, s := range Scenarios {
			known = known || s == p
		}
		if !known {
			return fmt.Errorf("unknown scenario %q (want one of %v)", p, Scenarios)
		}
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("scenario %s: rate %v is not between 0 and 1", p, r)
		}
		total += r
	}
	d := c.Delay
	switch {
	case total > 1:
		return fmt.Errorf("scenario rates add up to %v, more than 1", total)
	case c.FraudRate < 0 || c.FraudRate > 1:
		return fmt.Errorf("fraud rate %v is not between 0 and 1", c.FraudRate)
	case c.RetryRate < 0 || c.RetryRate > 1:
		return fmt.Errorf("retry rate %v is not between 0 and 1", c.RetryRate)
	case d.TailFraction < 0 || d.LateFraction < 0 || d.TailFraction+d.LateFraction > 1:
		return fmt.Errorf("delay fractions tail %v and late %v must be ≥ 0 and add up to at most 1", d.TailFraction, d.LateFraction)
	case d.TailFraction > 0 && d.TailMax <= time.Second:
		return fmt.Errorf("delay tail max %v must be more than 1s", d.TailMax)
	case d.LateFraction > 0 && d.LateMax <= time.Minute:
		return fmt.Errorf("delay late max %v must be more than 1m", d.LateMax)
	case d.Median < 0:
		return fmt.Errorf("delay median %v is negative", d.Median)
	case len(c.CardPrefix) > 50 || strings.TrimLeft(c.CardPrefix, idChars) != "":
		return fmt.Errorf("card prefix %q must be at most 50 of %s", c.CardPrefix, "A–Z a–z 0–9 _ - . :")
	}
	return nil
}

// idChars are the characters of a card or transaction id.
const idChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:"

// Stats counts what a generator produced so far.
type Stats struct {
	Transactions int             // returned by Next, retries included
	Retries      int             // resends among Transactions
	Draws        int             // fresh draws: each either ordinary traffic or an episode start
	Episodes     map[Pattern]int // episodes started per scenario
	ByPattern    map[Pattern]int // distinct transactions per pattern, retries excluded
	LateMinute   int             // transactions that arrived a minute or more after their event time
}

// Generator produces a stream of labeled transactions. It is not safe for
// concurrent use.
type Generator struct {
	cfg   Config
	rng   *rand.Rand
	pop   *population
	rates []float64 // cumulative episode-start probabilities, in Scenarios order
	seq   uint64    // last transaction number
	order uint64    // scheduling order, to break ties in the queue
	queue queue     // episode steps and retries not yet due
	stats Stats
}

// New returns a generator for cfg. Settings Validate rejects are clamped.
func New(cfg Config) *Generator {
	cfg.defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	g := &Generator{cfg: cfg, rng: rng, pop: newPopulation(rng, cfg.CardPrefix, cfg.Cards, cfg.Merchants),
		stats: Stats{Episodes: map[Pattern]int{}, ByPattern: map[Pattern]int{}}}
	cum := 0.0
	for _, p := range Scenarios {
		r := cfg.FraudRate / float64(len(Scenarios))
		if cfg.Scenarios != nil {
			r = cfg.Scenarios[p]
		}
		cum += max(r, 0)
		g.rates = append(g.rates, cum)
	}
	return g
}

// CardIDs lists the simulated cards.
func (g *Generator) CardIDs() []string {
	ids := make([]string, len(g.pop.cards))
	for i, c := range g.pop.cards {
		ids[i] = c.id
	}
	return ids
}

// Stats returns the counts so far.
func (g *Generator) Stats() Stats {
	s := g.stats
	s.Episodes, s.ByPattern = make(map[Pattern]int), make(map[Pattern]int)
	for k, v := range g.stats.Episodes {
		s.Episodes[k] = v
	}
	for k, v := range g.stats.ByPattern {
		s.ByPattern[k] = v
	}
	return s
}

// Pending is how many episode steps and retries are scheduled but not yet
// due.
func (g *Generator) Pending() int { return len(g.queue) }

// DueRetries removes the retries due by now and returns them in arrival
// order, each counted as returned, and reports whether more retries are
// scheduled. A bounded run calls it after its last new transaction, until
// there are no more, so every transaction chosen for a retry gets one.
// Episode steps stay queued.
func (g *Generator) DueRetries(now time.Time) (due []Labeled, more bool) {
	var keep queue
	for len(g.queue) > 0 {
		it := heap.Pop(&g.queue).(item)
		switch {
		case !it.l.Retry:
			keep = append(keep, it)
		case it.due.After(now):
			keep = append(keep, it)
			more = true
		default:
			g.stats.Transactions++
			g.stats.Retries++
			due = append(due, it.l)
		}
	}
	g.queue = keep // popped in order, so still a heap
	return due, more
}

// Next returns the next transaction arriving at the simulated time now:
// a due episode step or retry if there is one, else a fresh draw, which
// may start an episode whose later steps come out once now reaches their
// arrival time. now should not go backwards.
func (g *Generator) Next(now time.Time) Labeled {
	if len(g.queue) > 0 && !g.queue[0].due.After(now) {
		return g.emit(heap.Pop(&g.queue).(item).l, now)
	}
	g.stats.Draws++
	u := g.rng.Float64()
	for i, r := range g.rates {
		if u < r {
			return g.emit(g.episode(Scenarios[i], now), now)
		}
	}
	c := &g.pop.cards[g.rng.IntN(len(g.pop.cards))]
	return g.emit(g.normal(c, now.Add(-g.lag())), now)
}

// emit counts l and may schedule its retry.
func (g *Generator) emit(l Labeled, now time.Time) Labeled {
	g.stats.Transactions++
	if now.Sub(l.Tx.EventTime) >= time.Minute {
		g.stats.LateMinute++
	}
	if l.Retry {
		g.stats.Retries++
		return l
	}
	g.stats.ByPattern[l.Pattern]++
	if g.cfg.RetryRate > 0 && g.rng.Float64() < g.cfg.RetryRate {
		r := l
		r.Retry = true
		g.schedule(now.Add(50*time.Millisecond+time.Duration(g.rng.Int64N(int64(max(g.cfg.RetryAfter-50*time.Millisecond, 1))))), r)
	}
	return l
}

func (g *Generator) schedule(due time.Time, l Labeled) {
	g.order++ // ties go in scheduling order, for determinism
	heap.Push(&g.queue, item{due: due, order: g.order, l: l})
}

// lag draws an arrival delay.
func (g *Generator) lag() time.Duration {
	d := g.cfg.Delay
	if d.zero() {
		return time.Duration(g.rng.Int64N(int64(g.cfg.OutOfOrder)))
	}
	u := g.rng.Float64()
	switch {
	case u < d.LateFraction:
		return time.Minute + time.Duration(g.rng.Int64N(int64(d.LateMax-time.Minute)))
	case u < d.LateFraction+d.TailFraction:
		return time.Second + time.Duration(g.rng.Int64N(int64(d.TailMax-time.Second)))
	}
	// Exponential with the given median: median = mean·ln 2.
	return time.Duration(g.rng.ExpFloat64() * float64(d.Median) / math.Ln2)
}

// gap draws a time between episode steps, uniform in [lo, hi), scaled.
func (g *Generator) gap(lo, hi time.Duration) time.Duration {
	return time.Duration(float64(lo+time.Duration(g.rng.Int64N(int64(hi-lo)))) * g.cfg.EpisodeScale)
}

// normal is an ordinary purchase by card c near home at event time t.
func (g *Generator) normal(c *card, t time.Time) Labeled {
	k := c.pickCategory(g.rng.Float64())
	cat := categories[k]
	pool := g.pop.merchants[c.home][k]
	merchant := pool[c.fav[k][g.rng.IntN(2)]]
	if g.rng.Float64() < 0.2 {
		merchant = pool[g.rng.IntN(len(pool))]
	}
	at := c.home
	channel := event.ChannelCardPresent
	switch {
	case k == catATM:
		channel = event.ChannelATM
	case g.rng.Float64() < cat.online:
		channel = event.ChannelEcommerce
		// A few online purchases are from shops abroad: legitimate, and
		// a fair test of rules on foreign merchants.
		if g.rng.Float64() < 0.05 {
			at = otherCountry(g.rng, c.home, 0)
			merchant = g.pop.merchants[at][k][g.rng.IntN(len(g.pop.merchants[at][k]))]
		}
	}
	amount := cat.median * c.wealth * math.Exp(g.rng.NormFloat64()*cat.sigma)
	tx := g.tx(c, at, k, merchant, amount, channel, t)
	return Labeled{Tx: tx, Pattern: Normal}
}

// tx builds a transaction of card c at a merchant in city at; amount is in
// US cents and converted to the local currency. Card-present and ATM
// transactions carry a location near the card's home (or the city's centre
// when abroad); e-commerce ones carry the card's device and address.
func (g *Generator) tx(c *card, at, k int, merchant string, usCents float64, channel string, t time.Time) event.Transaction {
	g.seq++
	ct := cities[at]
	amount := int64(math.Round(usCents * ct.fx))
	tx := event.Transaction{
		TransactionID:    g.cfg.IDPrefix + "-" + strconv.FormatUint(g.seq, 10),
		CardID:           c.id,
		AccountID:        c.account(),
		AmountMinor:      min(max(amount, 1), event.MaxAmountMinor),
		Currency:         ct.currency,
		MerchantID:       merchant,
		MerchantCategory: categories[k].mcc,
		MerchantCountry:  ct.country,
		Channel:          channel,
		EventTime:        t.UTC().Truncate(time.Millisecond),
	}
	if channel == event.ChannelEcommerce {
		tx.DeviceID, tx.IP = c.deviceID(), c.homeIP()
		return tx
	}
	lat, lon := ct.lat, ct.lon
	if at == c.home {
		lat, lon = float64(c.lat), float64(c.lon)
	}
	lat += g.rng.NormFloat64() * 0.03
	lon += g.rng.NormFloat64() * 0.03
	tx.Lat, tx.Lon = &lat, &lon
	return tx
}

// item is a transaction waiting for its arrival time.
type item struct {
	due   time.Time
	order uint64
	l     Labeled
}

// queue is a min-heap of items by arrival time.
type queue []item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].order < q[j].order
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = item{}
	*q = old[:len(old)-1]
	return it
}
