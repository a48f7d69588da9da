package scorer_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer"
)

var writeLookalike = flag.Bool("write-lookalike", false, "rewrite testdata/lookalike from the laStream builders of lookalike_test.go")

// A look-alike laStream is one card's transactions, each with what the
// default rules and model must make of it: "flag" (review or decline),
// "pass" (approve), or "any" (not judged: history, or a step either way
// is defensible, such as the first small purchase from a stolen account's
// new device). The expectations are stated by the builders below, from the
// domain, never copied from results.
type lookalikeLine struct {
	Transaction event.Transaction `json:"transaction"`
	Want        string            `json:"want"`
	// Note says why, for a reader of the file.
	Note string `json:"note,omitempty"`
}

// Places and networks of the streams' cardholder, who lives in New York.
var (
	nyc  = [2]float64{40.71, -74.01}
	lon  = [2]float64{51.51, -0.13}
	sao  = [2]float64{-23.55, -46.63}
	base = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
)

type laStream struct {
	card  string
	n     int
	lines []lookalikeLine
}

func (s *laStream) add(at time.Time, cents int64, cur, merchant, mcc, country, channel string, where *[2]float64, device, ip, want, note string) {
	s.n++
	tx := event.Transaction{
		TransactionID: fmt.Sprintf("%s-%03d", s.card, s.n), CardID: s.card,
		AmountMinor: cents, Currency: cur, MerchantID: merchant, MerchantCategory: mcc, MerchantCountry: country,
		Channel: channel, DeviceID: device, IP: ip, EventTime: at,
	}
	if where != nil {
		lat, lon := where[0], where[1]
		tx.Lat, tx.Lon = &lat, &lon
	}
	s.lines = append(s.lines, lookalikeLine{Transaction: tx, Want: want, Note: note})
}

// history gives the card days of ordinary life at home: a grocery or
// restaurant purchase in person most mornings and evenings, and now and
// then an online order from the holder's phone at home.
func (s *laStream) history(days int) time.Time {
	for d := range days {
		day := base.Add(time.Duration(d) * 24 * time.Hour)
		s.add(day.Add(9*time.Hour), int64(3000+d%5*700), "USD", fmt.Sprintf("m-us-grocery-%d", d%2), "5411", "US", event.ChannelCardPresent, &nyc, "", "", "any", "history")
		s.add(day.Add(19*time.Hour), int64(2500+d%3*900), "USD", fmt.Sprintf("m-us-rest-%d", d%3), "5812", "US", event.ChannelCardPresent, &nyc, "", "", "any", "history")
		if d%3 == 0 {
			s.add(day.Add(21*time.Hour), int64(2000+d%4*1500), "USD", "m-us-shop-1", "5311", "US", event.ChannelEcommerce, nil, "dev-phone-1", "73.12.40.7", "any", "history")
		}
	}
	return base.Add(time.Duration(days) * 24 * time.Hour)
}

// lookalikeStreams builds the streams, by file name.
func lookalikeStreams() map[string]*laStream {
	out := map[string]*laStream{}
	mk := func(name string) *laStream {
		s := &laStream{card: "card-" + strings.ReplaceAll(name, "_", "-")}
		out[name] = s
		return s
	}

	// Account takeover: the fraudster logs in from a new device and
	// network and escalates slowly, testing how far the card goes.
	s := mk("ato_new_device_slow")
	t := s.history(14).Add(14 * time.Hour)
	for i, usd := range []int64{12, 35, 80, 160, 290, 420} {
		want := "flag"
		if i == 0 {
			want = "any"
		}
		s.add(t.Add(time.Duration(i)*9*time.Minute), usd*100, "USD", fmt.Sprintf("m-us-digital-%d", i), []string{"5816", "5732", "5045"}[i%3], "US", event.ChannelEcommerce, nil,
			"dev-x-77f3", "45.83.19.200", want, "takeover: new device and network, rising amounts within the hour")
	}

	// The holder's own new phone: one ordinary order from it.
	s = mk("holder_new_phone")
	t = s.history(14).Add(20 * time.Hour)
	s.add(t, 4200, "USD", "m-us-shop-1", "5311", "US", event.ChannelEcommerce, nil, "dev-phone-2", "73.12.40.7", "pass", "the holder's new phone at home, a usual order")

	// Card testing at many merchants: a bot tries the card number with
	// tiny charges at one shop after another.
	s = mk("card_testing_many_merchants")
	t = s.history(10).Add(3 * time.Hour)
	for i := range 8 {
		want := "flag"
		if i == 0 {
			want = "any"
		}
		s.add(t.Add(time.Duration(i)*25*time.Second), int64(100+i%3*50), "USD", fmt.Sprintf("m-web-%d", i), "5999", "US", event.ChannelEcommerce, nil,
			"", "", want, "card testing: a tiny charge at another merchant every half minute")
	}

	// In-app burst: the holder buys a few small items in a game, through
	// the app store the card has used before, from the holder's phone.
	s = mk("inapp_burst_one_merchant")
	t = s.history(12)
	for d := range 3 {
		s.add(base.Add(time.Duration(3*d+1)*24*time.Hour+22*time.Hour), 499, "USD", "m-appstore", "5816", "US", event.ChannelEcommerce, nil, "dev-phone-1", "73.12.40.7", "any", "history: the app store")
	}
	t = t.Add(20 * time.Hour)
	for i, c := range []int64{99, 199, 99, 499, 99, 299} {
		s.add(t.Add(time.Duration(i)*40*time.Second), c, "USD", "m-appstore", "5816", "US", event.ChannelEcommerce, nil, "dev-phone-1", "73.12.40.7", "pass", "in-app purchases at the card's app store, from its phone")
	}

	// Transit taps: several small fares in a row, in person, at home.
	s = mk("transit_burst")
	t = s.history(12).Add(8 * time.Hour)
	for i := range 4 {
		s.add(t.Add(time.Duration(i)*3*time.Minute), 290, "USD", "m-us-transit", "4111", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "transit fares for a family, in person at home")
	}

	// Idle card: a day and a half without transactions, then shopping at
	// home, which is not a new country.
	s = mk("idle_then_home")
	t = s.history(10).Add(36 * time.Hour)
	s.add(t, 21000, "USD", "m-us-grocery-0", "5411", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "home after 36 h idle: a big weekly shop")
	s.add(t.Add(2*time.Hour), 25000, "USD", "m-us-shop-2", "5311", "US", event.ChannelEcommerce, nil, "dev-phone-1", "73.12.40.7", "pass", "an online order from the phone")

	// A genuine flight: the last purchase at home, the first in London
	// 8 hours later (5,570 km, about 700 km/h gate to gate).
	s = mk("flight_then_purchase")
	t = s.history(12).Add(10 * time.Hour)
	s.add(t, 3500, "USD", "m-us-airport", "5812", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "at the airport")
	s.add(t.Add(8*time.Hour), 2400, "GBP", "m-gb-taxi", "4121", "GB", event.ChannelCardPresent, &lon, "", "", "pass", "first purchase after landing")
	s.add(t.Add(9*time.Hour), 32000, "GBP", "m-gb-hotel", "7011", "GB", event.ChannelCardPresent, &lon, "", "", "pass", "the hotel")
	s.add(t.Add(12*time.Hour), 4500, "GBP", "m-gb-rest", "5812", "GB", event.ChannelCardPresent, &lon, "", "", "pass", "dinner")

	// A legitimate big purchase in a category the card buys in.
	s = mk("big_purchase_known_category")
	t = s.history(6)
	for d, c := range []int64{12000, 18000, 9000} {
		s.add(base.Add(time.Duration(2*d)*24*time.Hour+15*time.Hour), c, "USD", "m-us-electro-1", "5732", "US", event.ChannelCardPresent, &nyc, "", "", "any", "history: electronics")
	}
	s.add(t.Add(14*time.Hour), 110000, "USD", "m-us-electro-2", "5732", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "a new laptop, in person at home")

	// A clone used far away minutes after the genuine card paid at home,
	// then the genuine card at home again: the clone's purchases are
	// flagged, the genuine card's are not.
	s = mk("clone_abroad_then_home")
	t = s.history(10).Add(12 * time.Hour)
	s.add(t, 4100, "USD", "m-us-grocery-1", "5411", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "genuine, at home")
	s.add(t.Add(4*time.Minute), 60000, "BRL", "m-br-electro", "5732", "BR", event.ChannelCardPresent, &sao, "", "", "flag", "clone in São Paulo")
	s.add(t.Add(9*time.Minute), 45000, "BRL", "m-br-dept", "5311", "BR", event.ChannelCardPresent, &sao, "", "", "flag", "clone again")
	for i, h := range []time.Duration{40 * time.Minute, 3 * time.Hour, 9 * time.Hour, 20 * time.Hour} {
		s.add(t.Add(h), int64(2600+i*400), "USD", fmt.Sprintf("m-us-rest-%d", i%3), "5812", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "genuine, at home")
	}

	// The same after the card was idle two days, so the clone comes first.
	s = mk("idle_clone_first_then_home")
	t = s.history(10).Add(48 * time.Hour)
	s.add(t, 55000, "BRL", "m-br-electro", "5732", "BR", event.ChannelCardPresent, &sao, "", "", "any", "clone in São Paulo: after two quiet days, a flight was possible")
	s.add(t.Add(25*time.Minute), 3900, "USD", "m-us-grocery-0", "5411", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "genuine, at home")
	s.add(t.Add(50*time.Minute), 48000, "BRL", "m-br-dept", "5311", "BR", event.ChannelCardPresent, &sao, "", "", "flag", "clone again, after the genuine card was at home")
	s.add(t.Add(5*time.Hour), 3100, "USD", "m-us-rest-1", "5812", "US", event.ChannelCardPresent, &nyc, "", "", "pass", "genuine, at home")
	for _, s := range out {
		slices.SortStableFunc(s.lines, func(a, b lookalikeLine) int { return a.Transaction.EventTime.Compare(b.Transaction.EventTime) })
	}
	return out
}

// TestLookalikeStreams scores each laStream of testdata/lookalike in a fresh
// scorer with the default rules and model and checks every judged line.
func TestLookalikeStreams(t *testing.T) {
	if *writeLookalike {
		for name, s := range lookalikeStreams() {
			var buf bytes.Buffer
			for _, l := range s.lines {
				b, err := json.Marshal(l)
				if err != nil {
					t.Fatal(err)
				}
				buf.Write(b)
				buf.WriteByte('\n')
			}
			if err := os.WriteFile(filepath.Join("testdata", "lookalike", name+".ndjson"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob("testdata/lookalike/*.ndjson")
	if err != nil || len(files) < 10 {
		t.Fatalf("look-alike streams: %v %v", files, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".ndjson"), func(t *testing.T) {
			o, err := scorer.NewOffline(scorer.DefaultConfig(), scorer.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			judged := 0
			for i, l := range readLookalike(t, file) {
				s, ok, err := o.Score(l.Transaction)
				if err != nil || !ok {
					t.Fatalf("line %d: scored %v, %v", i+1, ok, err)
				}
				flagged := s.Decision != event.DecisionApprove
				if l.Want == "any" {
					continue
				}
				judged++
				if flagged != (l.Want == "flag") {
					t.Errorf("line %d (%s, %s): %s with score %.3f, want %s; reasons %v; features %+v",
						i+1, l.Transaction.TransactionID, l.Note, s.Decision, s.Score, l.Want, s.Reasons, s.Features)
				}
			}
			if judged == 0 {
				t.Fatal("no judged line")
			}
		})
	}
}

// TestIdleCardAtHomeIsNotNewCountry: a card quiet for more than a day is
// not in a new country when it pays at home again.
func TestIdleCardAtHomeIsNotNewCountry(t *testing.T) {
	o, err := scorer.NewOffline(scorer.DefaultConfig(), scorer.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	lines := readLookalike(t, "testdata/lookalike/idle_then_home.ndjson")
	for i, l := range lines {
		s, _, err := o.Score(l.Transaction)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && s.Features.NewCountry {
			t.Errorf("line %d (%s): new_country", i+1, l.Note)
		}
	}
}

func readLookalike(t *testing.T, file string) []lookalikeLine {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []lookalikeLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l lookalikeLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s:%d: %v", file, n, err)
		}
		lines = append(lines, l)
	}
	return lines
}
