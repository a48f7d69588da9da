package scorer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/windowing"
)

func memTx(card, merchant, mcc, country, device, ip string, at time.Time) event.Transaction {
	tx := testTx(fmt.Sprintf("%s-%d", card, at.UnixMilli()), card, at)
	tx.MerchantID, tx.MerchantCategory, tx.MerchantCountry, tx.DeviceID, tx.IP = merchant, mcc, country, device, ip
	if device != "" {
		tx.Channel = event.ChannelEcommerce
	}
	return tx
}

// TestMemoryBounded: however many different values a card uses, its
// long memory holds at most memCap of each kind, and its changelog value
// stays small.
func TestMemoryBounded(t *testing.T) {
	tk, c := newTask(0, testParams()), newBatchCounts()
	start := time.Unix(0, t0).UTC()
	for i := range 500 {
		tx := memTx("card-1", fmt.Sprintf("m-%d", i), fmt.Sprintf("%04d", 5000+i%50), []string{"DE", "FR", "US", "JP", "BR", "GB"}[i%6],
			fmt.Sprintf("dev-%d", i), fmt.Sprintf("10.%d.%d.1", i%200, i%100), start.Add(time.Duration(i)*7*time.Minute))
		tk.process(txRecord(t, 0, int64(i), tx), &c)
	}
	cs := tk.cards["card-1"]
	var per [numMemKinds]int
	for _, e := range cs.mem.entries {
		per[e.kind]++
	}
	for k := range numMemKinds {
		if per[k] != memCap[k] {
			t.Errorf("kind %d: %d entries, want the cap %d", k, per[k], memCap[k])
		}
	}
	b := appendMemory(nil, &cs.mem)
	if len(b) > 600 {
		t.Errorf("memory encodes to %d bytes", len(b))
	}
}

// TestMemoryOutlivesLookback: a card quiet for ten days still knows its
// country, merchant and device; after memoryRetention it is forgotten and
// flush deletes it.
func TestMemoryOutlivesLookback(t *testing.T) {
	tk, c := newTask(0, testParams()), newBatchCounts()
	start := time.Unix(0, t0).UTC()
	var off int64
	score := func(tx event.Transaction) event.Scored {
		t.Helper()
		out := tk.process(txRecord(t, 0, off, tx), &c)
		off++
		return decodeOut(t, out[0])
	}
	for i := range 5 {
		score(memTx("card-1", "m-1", "5411", "DE", "dev-1", "10.1.2.3", start.Add(time.Duration(i)*time.Hour)))
	}
	// Other cards move the watermark on.
	later := start.Add(10 * 24 * time.Hour)
	score(memTx("card-2", "m-9", "5411", "FR", "", "", later))
	tk.flush()
	if cs := tk.cards["card-1"]; cs == nil || cs.series.Len() != 0 || len(cs.ids) != 0 || cs.hasPrev {
		t.Fatalf("after 10 days card-1 holds %+v, want its long memory only", cs)
	}
	s := score(memTx("card-1", "m-1", "5411", "DE", "dev-1", "10.1.2.77", later.Add(time.Minute)))
	if f := s.Features; f.NewCountry || f.NewMerchant || !f.DeviceKnown || f.NewDevice || f.NewIP || f.HistoryCount != 5 || f.MerchantVisits != 5 {
		t.Errorf("after 10 quiet days: %+v", f)
	}
	s = score(memTx("card-1", "m-2", "5411", "DE", "dev-2", "172.16.0.1", later.Add(2*time.Minute)))
	if f := s.Features; !f.NewDevice || !f.NewIP || f.DeviceKnown || f.Devices1h != 2 {
		t.Errorf("a new device and network: %+v", f)
	}

	gone := later.Add(memoryRetention + 2*24*time.Hour)
	score(memTx("card-2", "m-9", "5411", "FR", "", "", gone))
	recs := tk.flush()
	if _, ok := tk.cards["card-1"]; ok {
		t.Fatal("card-1 kept after its memory expired")
	}
	tomb := slices.ContainsFunc(recs, func(r *kgo.Record) bool { return string(r.Key) == "card-1" && r.Value == nil })
	if !tomb {
		t.Error("no tombstone for card-1")
	}
}

// TestCardStateVersion2: a value written before long memory decodes with
// an empty memory and every place visited once; a version 4 value
// round-trips the memory and the visits.
func TestCardStateVersion2(t *testing.T) {
	lb, err := windowing.NewLookback(windowing.WithRetention(retention))
	if err != nil {
		t.Fatal(err)
	}
	v2 := []byte{2}
	v2 = binary.AppendVarint(v2, 5_000)
	v2 = append(v2, 0)               // no previous transaction
	v2 = binary.AppendUvarint(v2, 1) // baseline of 1 amount
	for _, f := range []float64{500, 0, math.Log(500)} {
		v2 = binary.LittleEndian.AppendUint64(v2, math.Float64bits(f))
	}
	v2 = binary.AppendUvarint(v2, 1) // one place
	for _, f := range []float64{52.5, 13.4, 0} {
		v2 = binary.LittleEndian.AppendUint64(v2, math.Float64bits(f))
	}
	v2 = binary.AppendVarint(v2, 4_000)
	v2 = binary.AppendUvarint(v2, 0) // no ids
	v2, _ = newCardState(lb).series.AppendBinary(v2)
	old, err := decodeCardState(lb, v2)
	if err != nil {
		t.Fatal(err)
	}
	if old.nplaces != 1 || old.places[0].visits != 1 || len(old.mem.entries) != 0 || old.mem.count != 0 {
		t.Errorf("version 2: %+v", old)
	}

	cs := newCardState(lb)
	cs.visit(-1, 52.5, 13.4, 4_000, 0)
	cs.visit(0, 52.5, 13.4, 5_000, 0)
	et := time.UnixMilli(6_000_000).UTC()
	cs.mem.remember(keysPtr(memTx("c", "m-1", "5411", "DE", "dev-1", "10.0.0.1", et)), et.UnixMilli(), math.MinInt64, 1234)
	cs.mem.remember(keysPtr(memTx("c", "m-2", "5732", "DE", "dev-1", "2001:db8::1", et.Add(time.Hour))), et.Add(time.Hour).UnixMilli(), math.MinInt64, 99_000)
	b, _ := cs.appendBinary(nil)
	if b[0] != 4 {
		t.Fatalf("version %d", b[0])
	}
	back, err := decodeCardState(lb, b)
	if err != nil {
		t.Fatal(err)
	}
	if back.places != cs.places || !slices.Equal(back.mem.entries, cs.mem.entries) || back.mem.first != cs.mem.first ||
		back.mem.last != cs.mem.last || back.mem.count != cs.mem.count {
		t.Errorf("round trip: %+v\nwant %+v", back.mem, cs.mem)
	}
	// A value claiming more entries than the caps is refused.
	bad := appendMemory(nil, &memory{entries: make([]memEntry, 40)})
	d := decoder{p: bad}
	decodeMemory(&d, &memory{})
	if d.err == nil {
		t.Error("40 memory entries accepted")
	}
}

func keysPtr(tx event.Transaction) *memKeys { k := keysOf(&tx); return &k }

// TestMemoryBatchBoundaries: the scored values of a stream whose cards go
// quiet for days (look-back expired, long memory alive, then expired) do
// not depend on where the batches end: flush after every record, or never.
func TestMemoryBatchBoundaries(t *testing.T) {
	start := time.Unix(0, t0).UTC()
	var txs []event.Transaction
	at := start
	for i := range 400 {
		// Bursts of activity separated by quiet spells of 0.5 to 40 days.
		if i%40 == 0 {
			at = at.Add(time.Duration(12+(i/40)*97%960) * time.Hour)
		}
		at = at.Add(time.Duration(1+i%7) * time.Minute)
		card := fmt.Sprintf("card-%d", i%9)
		tx := memTx(card, fmt.Sprintf("m-%d", i%13), fmt.Sprintf("%04d", 5400+i%5), []string{"DE", "FR", "US"}[i%3],
			fmt.Sprintf("dev-%d", i%4), fmt.Sprintf("10.%d.0.1", i%3), at)
		tx.TransactionID = fmt.Sprintf("tx-%d", i)
		if i%5 == 0 {
			lat, lon := 48.0+float64(i%3)*10, 2.0+float64(i%2)*60
			tx.Channel, tx.Lat, tx.Lon = event.ChannelCardPresent, &lat, &lon
		}
		txs = append(txs, tx)
	}
	run := func(flushEvery int) [][]byte {
		tk, c := newTask(0, testParams()), newBatchCounts()
		var out [][]byte
		for i, tx := range txs {
			recs := tk.process(txRecord(t, 0, int64(i), tx), &c)
			if len(recs) != 1 || recs[0].Topic != event.TopicScored {
				t.Fatalf("record %d: %v", i, recs)
			}
			out = append(out, recs[0].Value)
			if flushEvery > 0 && i%flushEvery == 0 {
				tk.flush()
			}
		}
		return out
	}
	a, b := run(1), run(0)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("record %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}
}
