package traffic

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// city is where cards live and merchants trade.
type city struct {
	country  string
	currency string
	fx       float64 // minor units of the local currency per US cent
	lat, lon float64
	ip       [2]byte // first two octets of addresses in this city
}

var cities = []city{
	{"US", "USD", 1, 40.71, -74.01, [2]byte{73, 12}}, {"US", "USD", 1, 34.05, -118.24, [2]byte{76, 90}},
	{"GB", "GBP", 0.8, 51.51, -0.13, [2]byte{81, 2}}, {"DE", "EUR", 0.92, 52.52, 13.40, [2]byte{84, 56}},
	{"FR", "EUR", 0.92, 48.86, 2.35, [2]byte{90, 84}}, {"JP", "JPY", 1.5, 35.68, 139.69, [2]byte{126, 7}},
	{"BR", "BRL", 5, -23.55, -46.63, [2]byte{177, 33}}, {"AU", "AUD", 1.5, -33.87, 151.21, [2]byte{101, 160}},
	{"IN", "INR", 83, 19.08, 72.88, [2]byte{117, 196}}, {"CA", "CAD", 1.35, 43.65, -79.38, [2]byte{99, 230}},
	{"NL", "EUR", 0.92, 52.37, 4.90, [2]byte{145, 53}}, {"SG", "SGD", 1.35, 1.35, 103.82, [2]byte{116, 14}},
	{"MX", "MXN", 17, 19.43, -99.13, [2]byte{187, 190}}, {"ZA", "ZAR", 18, -26.20, 28.05, [2]byte{105, 224}},
}

// category is a merchant category (MCC) with what a typical purchase in it
// costs and how often it is made online. Amounts are in US cents; a card's
// wealth and the local currency scale them.
type category struct {
	mcc    string
	median float64 // typical purchase in US cents
	sigma  float64 // spread of the log amount
	online float64 // share of e-commerce purchases
	weight float64 // how popular the category is in the population
}

// Indexes into categories that the fraud scenarios use by name.
const (
	catGrocery = iota
	catRestaurant
	catFastFood
	catFuel
	catDepartment
	catTransit
	catElectronics
	catPharmacy
	catHotel
	catMisc
	catDigital
	catJewelry
	catATM
	numCategories
)

var categories = [numCategories]category{
	catGrocery:     {"5411", 4500, 0.6, 0.05, 20},
	catRestaurant:  {"5812", 3500, 0.5, 0.02, 12},
	catFastFood:    {"5814", 1200, 0.4, 0.05, 14},
	catFuel:        {"5541", 4000, 0.4, 0, 8},
	catDepartment:  {"5311", 7000, 0.7, 0.3, 6},
	catTransit:     {"4111", 300, 0.4, 0.2, 10},
	catElectronics: {"5732", 18000, 0.8, 0.5, 2},
	catPharmacy:    {"5912", 2500, 0.6, 0.1, 5},
	catHotel:       {"7011", 20000, 0.6, 0.7, 1},
	catMisc:        {"5999", 3000, 0.8, 0.4, 5},
	catDigital:     {"5816", 1000, 0.7, 1, 3},
	catJewelry:     {"5944", 40000, 0.9, 0.3, 0.5},
	catATM:         {"6011", 10000, 0.5, 0, 3},
}

// card is one simulated cardholder: where they live, what they buy, and
// the device and address they shop online from. It is kept small, so a run
// can simulate millions of cards: identifiers other than the card id are
// derived when a transaction needs them.
type card struct {
	id       string
	home     int     // index into cities
	wealth   float64 // multiplies every category's median
	lat, lon float32 // home location
	device   uint64  // the cardholder's device
	ip       uint16  // last two octets of the home address
	cum      [numCategories]float32
	fav      [numCategories][2]uint16 // favourite merchants per category, in the home city
}

// account is the card's account: its id with "acct-" for "card-".
func (c *card) account() string { return "acct-" + strings.TrimPrefix(c.id, "card-") }

func (c *card) deviceID() string { return "dev-" + strconv.FormatUint(c.device, 36) }

func (c *card) homeIP() string { return formatIP(cities[c.home].ip, byte(c.ip>>8), byte(c.ip)) }

// population is the simulated world: cards and merchants.
type population struct {
	cards     []card
	byCity    [][]int32                 // card indexes per home city
	merchants [][numCategories][]string // merchant ids per city and category
	fraudster []string                  // merchants run or used by fraud rings, per city
}

func newPopulation(rng *rand.Rand, cardPrefix string, nCards, nMerchants int) *population {
	p := &population{
		cards:     make([]card, nCards),
		byCity:    make([][]int32, len(cities)),
		merchants: make([][numCategories][]string, len(cities)),
		fraudster: make([]string, len(cities)),
	}
	perCell := min(max(1, nMerchants/(len(cities)*numCategories)), math.MaxUint16)
	for ci := range cities {
		for k := range categories {
			ids := make([]string, perCell)
			for n := range ids {
				ids[n] = "m-" + cities[ci].country + strconv.Itoa(ci) + "-" + categories[k].mcc + "-" + strconv.Itoa(n)
			}
			p.merchants[ci][k] = ids
		}
		p.fraudster[ci] = "m-" + cities[ci].country + strconv.Itoa(ci) + "-x-" + strconv.Itoa(rng.IntN(1000))
	}
	for i := range p.cards {
		c := &p.cards[i]
		c.id = cardPrefix + pad6(strconv.Itoa(i))
		c.device = rng.Uint64() >> 16
		c.home = rng.IntN(len(cities))
		home := cities[c.home]
		c.lat = float32(home.lat + rng.NormFloat64()*0.08)
		c.lon = float32(home.lon + rng.NormFloat64()*0.08)
		c.ip = uint16(rng.Uint32())
		c.wealth = math.Exp(rng.NormFloat64() * 0.5)
		c.cum = taste(rng)
		c.cum[numCategories-1] = 1
		for k := range categories {
			pool := len(p.merchants[c.home][k])
			c.fav[k] = [2]uint16{uint16(rng.IntN(pool)), uint16(rng.IntN(pool))}
		}
		p.byCity[c.home] = append(p.byCity[c.home], int32(i))
	}
	return p
}

func pad6(s string) string {
	const zeros = "000000"
	if len(s) >= 6 {
		return s
	}
	return zeros[:6-len(s)] + s
}

// pickCategory draws a category from the card's spending profile.
func (c *card) pickCategory(u float64) int {
	for k, v := range c.cum {
		if u < float64(v) {
			return k
		}
	}
	return numCategories - 1
}

// typical is the card's median purchase in US cents, over its profile.
func (c *card) typical() float64 {
	sum, prev := 0.0, 0.0
	for k, v := range c.cum {
		sum += (float64(v) - prev) * categories[k].median
		prev = float64(v)
	}
	return sum * c.wealth
}

func ipIn(rng *rand.Rand, ci int) string {
	return formatIP(cities[ci].ip, byte(rng.IntN(256)), byte(1+rng.IntN(254)))
}

func formatIP(prefix [2]byte, c, d byte) string {
	b := make([]byte, 0, 15)
	for i, o := range [4]byte{prefix[0], prefix[1], c, d} {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, uint64(o), 10)
	}
	return string(b)
}

// otherCountry draws a city in a different country than home and, with
// minKm > 0, at least that far away.
func otherCountry(rng *rand.Rand, home int, minKm float64) int {
	h := cities[home]
	for {
		ci := rng.IntN(len(cities))
		c := cities[ci]
		if c.country != h.country && haversineKm(h.lat, h.lon, c.lat, c.lon) >= minKm {
			return ci
		}
	}
}

func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dlat, dlon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * r * math.Asin(math.Sqrt(a))
}
