package scorer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/watermark"
)

func testParams() *taskParams {
	p, err := newTaskParams(DefaultConfig(), PredictableDeps(nil), func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) })
	if err != nil {
		panic(err)
	}
	return p
}

func testTx(id, card string, et time.Time) event.Transaction {
	return event.Transaction{
		TransactionID: id, CardID: card, AmountMinor: 1250, Currency: "EUR",
		MerchantID: "m-1", MerchantCategory: "5411", MerchantCountry: "DE",
		Channel: event.ChannelCardPresent, EventTime: et,
	}
}

func txRecord(t testing.TB, partition int32, offset int64, tx event.Transaction) *kgo.Record {
	t.Helper()
	v, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: event.TopicRaw, Partition: partition, Offset: offset, Key: []byte(tx.CardID), Value: v}
}

func decodeOut(t testing.TB, r *kgo.Record) event.Scored {
	t.Helper()
	if r.Topic != event.TopicScored {
		t.Fatalf("record to %s, want %s (headers %v)", r.Topic, event.TopicScored, r.Headers)
	}
	s, err := event.DecodeScored(r.Value)
	if err != nil {
		t.Fatalf("decode scored: %v", err)
	}
	return s
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func TestTaskScoresAndDeduplicates(t *testing.T) {
	tk := newTask(3, testParams())
	c := newBatchCounts()
	base := time.Unix(0, t0).UTC()

	out := tk.process(txRecord(t, 3, 10, testTx("t1", "c1", base)), &c)
	if len(out) != 1 {
		t.Fatalf("got %d records, want 1", len(out))
	}
	s := decodeOut(t, out[0])
	if out[0].Partition != 3 || s.Partition != 3 || s.Offset != 10 || string(out[0].Key) != "c1" {
		t.Errorf("partition/offset/key = %d/%d/%d/%q, want 3/3/10/c1", out[0].Partition, s.Partition, s.Offset, out[0].Key)
	}
	if s.Decision != event.DecisionApprove || s.Score != 0 || s.Features.Count1m != 0 || len(s.Reasons) != 0 {
		t.Errorf("first transaction scored %+v", s)
	}
	if want := base.Add(-DefaultMaxOutOfOrder); !s.Watermark.Equal(want) {
		t.Errorf("watermark = %s, want %s", s.Watermark, want)
	}
	if at, ok := header(out[0], event.HeaderScoredAt); !ok || at != "2030-01-01T00:00:00Z" {
		t.Errorf("scored-at header = %q, %v", at, ok)
	}

	// The same transaction again, even at another offset, is dropped.
	if out := tk.process(txRecord(t, 3, 11, testTx("t1", "c1", base)), &c); len(out) != 0 {
		t.Fatalf("duplicate produced %d records", len(out))
	}
	if c.duplicates != 1 || c.records != 2 || c.decisions[event.DecisionApprove] != 1 {
		t.Errorf("counts = %+v", c)
	}
}

// TestTaskTransactionIDReuse: a record repeating a transaction_id with the
// same contents is a redelivery and dropped, whatever its offset and
// ingest_time; one with other contents is another transaction reusing the
// id, dead-lettered with its reason and counted, never dropped. The first
// contents keep the id, also across a restore from the changelog.
func TestTaskTransactionIDReuse(t *testing.T) {
	p := testParams()
	tk := newTask(3, p)
	c := newBatchCounts()
	base := time.Unix(0, t0).UTC()
	first := testTx("t1", "c1", base)
	first.IngestTime = base.Add(time.Second)
	if out := tk.process(txRecord(t, 3, 10, first), &c); len(out) != 1 || out[0].Topic != event.TopicScored {
		t.Fatalf("first: %+v", out)
	}
	redelivered := first
	redelivered.IngestTime = base.Add(time.Minute) // ingest produced it again
	other := first
	other.AmountMinor = 999_999 // same card, so the same partition
	otherTime := first
	otherTime.EventTime = base.Add(time.Second)

	cl := changelog{}
	cl.apply(tk.flush())
	restored := restoreTask(t, 3, p, cl)

	for _, tk := range map[string]*task{"live": tk, "restored": restored} {
		c := newBatchCounts()
		tests := []struct {
			name string
			tx   event.Transaction
			dead bool
		}{
			{"exact redelivery", first, false},
			{"redelivery with another ingest_time", redelivered, false},
			{"other amount", other, true},
			{"other event_time", otherTime, true},
			{"the first contents again", first, false},
			{"the other contents again", other, true},
		}
		for i, tt := range tests {
			out := tk.process(txRecord(t, 3, int64(11+i), tt.tx), &c)
			switch {
			case !tt.dead && len(out) != 0:
				t.Fatalf("%s: produced %+v, want it dropped", tt.name, out)
			case tt.dead && (len(out) != 1 || out[0].Topic != event.TopicDLQ):
				t.Fatalf("%s: produced %+v, want one dead letter", tt.name, out)
			case tt.dead:
				if e, _ := header(out[0], event.HeaderError); !strings.HasPrefix(e, "transaction_id reused with different content") ||
					!strings.Contains(e, `"t1"`) {
					t.Errorf("%s: error header %q", tt.name, e)
				}
				if out[0].Partition != 3 || string(out[0].Key) != "c1" {
					t.Errorf("%s: dead letter on partition %d key %q", tt.name, out[0].Partition, out[0].Key)
				}
			}
		}
		if c.duplicates != 3 || c.idConflicts != 3 || c.dlq != 3 || c.records != 6 || len(c.decisions) != 0 {
			t.Errorf("counts %+v, want 3 redeliveries and 3 reuses dead-lettered", c)
		}
	}
}

// TestTaskVersion2IDs: ids restored from a version 2 changelog have no
// fingerprint; a repeat of one is taken for a redelivery, as version 2 did.
func TestTaskVersion2IDs(t *testing.T) {
	p := testParams()
	tk := newTask(0, p)
	c := newBatchCounts()
	base := time.Unix(0, t0).UTC()
	tx := testTx("t1", "c1", base)
	tk.process(txRecord(t, 0, 0, tx), &c)
	cs := tk.cards["c1"]
	v4, _ := cs.appendBinary(nil)
	v2 := appendVersion2(t, cs)
	back := newTask(0, p)
	if err := back.load("c1", v2); err != nil {
		t.Fatalf("version 2: %v", err)
	}
	back.rebuildIndexes()
	if got := back.seen["t1"]; got.fp != 0 || got.at != tx.EventTime.UnixMilli() {
		t.Errorf("version 2 id restored as %+v", got)
	}
	other := tx
	other.AmountMinor = 5
	if out := back.process(txRecord(t, 0, 1, other), &c); len(out) != 0 {
		t.Errorf("a repeat of a version 2 id produced %+v, want it dropped", out)
	}
	if v4[0] != cardStateVersion || cardStateVersion != 4 {
		t.Errorf("card state written as version %d", v4[0])
	}
}

// appendVersion2 writes cs as a version 2 changelog value: no place
// visits, no long memory, no id fingerprints.
func appendVersion2(t *testing.T, cs *cardState) []byte {
	t.Helper()
	b := []byte{2}
	b = binary.AppendVarint(b, cs.last)
	var flags byte
	if cs.hasPrev {
		flags |= 1
	}
	if cs.prevHasLoc {
		flags |= 2
	}
	b = append(b, flags)
	if cs.hasPrev {
		b = binary.AppendVarint(b, cs.prevT)
		if cs.prevHasLoc {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.prevLat))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.prevLon))
		}
	}
	b = binary.AppendUvarint(b, uint64(cs.n))
	if cs.n > 0 {
		for _, f := range []float64{cs.mean, cs.m2, cs.logMean} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	}
	b = binary.AppendUvarint(b, uint64(cs.nplaces))
	for _, p := range cs.places[:cs.nplaces] {
		for _, f := range []float64{p.lat, p.lon, p.arrivalKmh} {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
		b = binary.AppendVarint(b, p.last)
	}
	b = binary.AppendUvarint(b, uint64(len(cs.ids)))
	prev := cs.last
	for _, x := range cs.ids {
		b = binary.AppendVarint(b, x.at-prev)
		b = binary.AppendUvarint(b, uint64(len(x.id)))
		b = append(b, x.id...)
		prev = x.at
	}
	b, err := cs.series.AppendBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTaskDeadLetters(t *testing.T) {
	tests := []struct {
		name  string
		value []byte
		want  string // substring of the error header
	}{
		{"not JSON", []byte("\x00garbage"), "malformed JSON"},
		{"duplicate key", []byte(`{"transaction_id":"x","transaction_id":"y"}`), "/transaction_id: duplicate key"},
		{"key in another case", mustEncode(t, func(tx *event.Transaction) { tx.AmountMinor = 0 }, `"Amount_Minor":5`), "/amount_minor"},
		{"invalid", mustEncode(t, func(tx *event.Transaction) { tx.AmountMinor = 0 }), "/amount_minor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := newTask(1, testParams())
			c := newBatchCounts()
			in := &kgo.Record{Topic: event.TopicRaw, Partition: 1, Offset: 7, Key: []byte("k"), Value: tt.value,
				Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
			out := tk.process(in, &c)
			if len(out) != 1 || out[0].Topic != event.TopicDLQ {
				t.Fatalf("got %+v, want one DLQ record", out)
			}
			r := out[0]
			if r.Partition != 1 || !bytes.Equal(r.Key, in.Key) || !bytes.Equal(r.Value, in.Value) {
				t.Errorf("DLQ record %+v does not keep partition, key and value", r)
			}
			if v, _ := header(r, "trace"); v != "abc" {
				t.Errorf("input headers not kept: %v", r.Headers)
			}
			if e, ok := header(r, event.HeaderError); !ok || !bytes.Contains([]byte(e), []byte(tt.want)) {
				t.Errorf("error header = %q, want it to mention %q", e, tt.want)
			}
			if c.dlq != 1 {
				t.Errorf("dlq count = %d", c.dlq)
			}
		})
	}
}

// mustEncode encodes a test transaction changed by edit, with extra
// members (JSON text such as `"a":1`) added before its closing brace.
// TestTaskScoresUnknownFields: a raw-transactions record with fields a
// newer producer added is scored like the same record without them
// (forward compatibility), not dead-lettered.
func TestTaskScoresUnknownFields(t *testing.T) {
	plain := mustEncode(t, func(*event.Transaction) {})
	for name, v := range map[string][]byte{
		"string":          mustEncode(t, func(*event.Transaction) {}, `"wallet":"apple_pay"`),
		"object":          mustEncode(t, func(*event.Transaction) {}, `"three_ds":{"version":"2.2","eci":"05"}`),
		"case of a field": mustEncode(t, func(*event.Transaction) {}, `"Amount_Minor":999999`),
	} {
		t.Run(name, func(t *testing.T) {
			var scored [2]event.Scored
			for i, value := range [][]byte{plain, v} {
				tk := newTask(1, testParams())
				c := newBatchCounts()
				out := tk.process(&kgo.Record{Topic: event.TopicRaw, Partition: 1, Offset: 7, Key: []byte("card-1"), Value: value}, &c)
				if len(out) != 1 || c.dlq != 0 {
					t.Fatalf("%s: got %d records, %d dead letters; want one scored record", value, len(out), c.dlq)
				}
				scored[i] = decodeOut(t, out[0])
			}
			if !reflect.DeepEqual(scored[0], scored[1]) {
				t.Fatalf("with an unknown field scored as\n%+v\nwithout\n%+v", scored[1], scored[0])
			}
		})
	}
}

func mustEncode(t testing.TB, edit func(*event.Transaction), extra ...string) []byte {
	tx := testTx("id-1", "card-1", time.Unix(0, t0).UTC())
	edit(&tx)
	v, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range extra {
		v = append(v[:len(v)-1], ","+m+"}"...)
	}
	return v
}

// TestTaskVelocityOutOfOrder: a burst of one card, partly out of order.
// Each record sees exactly the earlier-processed records within the minute
// before its own event time.
func TestTaskVelocityOutOfOrder(t *testing.T) {
	tk := newTask(0, testParams())
	c := newBatchCounts()
	base := time.Unix(0, t0).UTC()
	secs := []int{0, 5, 10, 15, 20, 2, 25, 30, 1}
	// count_1m of each: earlier-processed with event time in (t-1m, t].
	want := []int64{0, 1, 2, 3, 4, 1, 6, 7, 1}
	for i, sec := range secs {
		out := tk.process(txRecord(t, 0, int64(i), testTx(fmt.Sprintf("b%d", i), "burst", base.Add(time.Duration(sec)*time.Second))), &c)
		s := decodeOut(t, out[0])
		if s.Features.Count1m != want[i] {
			t.Errorf("record %d (t+%ds): count_1m = %d, want %d", i, sec, s.Features.Count1m, want[i])
		}
		fired := len(s.Reasons) == 1 && s.Reasons[0].Code == ReasonVelocity1m
		if fired != (want[i] >= Velocity1mLimit) {
			t.Errorf("record %d: reasons %+v", i, s.Reasons)
		}
		if fired && s.Decision != event.DecisionDecline {
			t.Errorf("record %d: decision %s with VELOCITY_1M, want decline", i, s.Decision)
		}
	}
}

// TestTaskAgainstOracle runs a long random out-of-order stream, with some
// records far behind the watermark (they count at the oldest open time)
// and redelivered ids, through a task
// (which evicts as it goes, flushing at random batch ends) and compares
// every count and sum, late flag, redelivery drop and dead letter of a
// reused transaction_id with a brute-force model that never evicts
// anything.
func TestTaskAgainstOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	tk := newTask(0, testParams())
	c := newBatchCounts()
	ms := func(d time.Duration) int64 { return d.Milliseconds() }

	type rec struct{ et, amount int64 }
	kept := map[string][]rec{}      // what the oracle's card states hold
	firstSeen := map[string]int64{} // transaction_id → de-duplication time
	firstET := map[string]int64{}
	type contents struct {
		card   string
		amount int64
	}
	firstAs := map[string]contents{} // what an id was first scored with
	maxSeen, has := int64(0), false
	clock := t0 / 1e6
	var ids []string
	for i := range 12000 {
		clock += rng.Int64N(ms(40 * time.Second)) // ~2.8 days in total
		et := clock - rng.Int64N(ms(3*time.Second))
		switch rng.IntN(50) {
		case 0:
			et = clock - ms(2*time.Minute) - rng.Int64N(ms(10*time.Minute)) // too late
		case 1:
			et = clock - rng.Int64N(ms(30*time.Hour)) // beyond the horizon sometimes
		}
		id := fmt.Sprintf("tx-%d", i)
		card := fmt.Sprintf("card-%d", rng.IntN(8))
		amount := 100 + rng.Int64N(5000)
		reuse := false
		if len(ids) > 0 && rng.IntN(20) == 0 {
			id = ids[rng.IntN(len(ids))] // a redelivered transaction
			et = firstET[id]
			// or, once in three, another transaction reusing its id
			if reuse = rng.IntN(3) == 0; !reuse {
				card, amount = firstAs[id].card, firstAs[id].amount
			}
		}

		// Oracle.
		wm := int64(watermark.None)
		if has {
			wm = maxSeen - ms(DefaultMaxOutOfOrder)
		}
		floor := watermark.Sub(wm, ms(DefaultAllowedLateness+retention))
		first, seen := firstSeen[id]
		wantDup := seen && first > floor
		if wantDup && reuse && firstAs[id] != (contents{card, amount}) {
			wantDup = false
			x := testTx(id, card, time.UnixMilli(et).UTC())
			x.AmountMinor = amount
			out := tk.process(txRecord(t, 0, int64(i), x), &c)
			if len(out) != 1 || out[0].Topic != event.TopicDLQ {
				t.Fatalf("record %d: %s reused with other contents gave %+v, want a dead letter", i, id, out)
			}
			continue
		}
		wantLate := et <= watermark.Sub(wm, ms(DefaultAllowedLateness))
		// A too-late record counts at the oldest open time instead
		// (docs/design/event-time.md).
		ts := et
		if wantLate {
			ts = watermark.Sub(wm, ms(DefaultAllowedLateness)) + 1
		}
		var want [4]int64
		var sum24 int64
		for _, k := range kept[card] {
			for h, d := range horizons {
				if k.et > max(ts-ms(d), floor) && k.et <= ts {
					want[h]++
					if h == h24h {
						sum24 += k.amount
					}
				}
			}
		}

		x := testTx(id, card, time.UnixMilli(et).UTC())
		x.AmountMinor = amount
		out := tk.process(txRecord(t, 0, int64(i), x), &c)
		if rng.IntN(30) == 0 {
			tk.flush()
		}
		if wantDup {
			if len(out) != 0 {
				t.Fatalf("record %d: duplicate %s not dropped", i, id)
			}
			continue
		}
		if len(out) != 1 {
			t.Fatalf("record %d: %d outputs", i, len(out))
		}
		s := decodeOut(t, out[0])
		f := s.Features
		if got := [4]int64{f.Count1m, f.Count10m, f.Count1h, f.Count24h}; got != want || f.Sum24h != sum24 || s.Late != wantLate {
			t.Fatalf("record %d: counts %v sum_24h %d late=%v, oracle %v %d %v", i, got, f.Sum24h, s.Late, want, sum24, wantLate)
		}
		// Sums are in US cents at the reference rate.
		kept[card] = append(kept[card], rec{ts, int64(event.USCents(amount, x.Currency))})
		firstSeen[id] = max(ts, wm)
		firstAs[id] = contents{card, amount} // the id counts again once expired
		if _, ok := firstET[id]; !ok {
			firstET[id] = et
		}
		ids = append(ids, id)
		if !has || ts > maxSeen {
			maxSeen, has = ts, true
		}
	}
	tk.flush()
	// Eviction keeps state bounded: ~24h of ids out of ~3 days.
	if len(tk.seen) > len(ids)/2 {
		t.Errorf("dedup set holds %d of %d ids; eviction not working", len(tk.seen), len(ids))
	}
	held := 0
	for _, cs := range tk.cards {
		held += cs.series.Len()
	}
	if held > len(ids)/2 {
		t.Errorf("card series hold %d records of %d; eviction not working", held, len(ids))
	}
	if c.duplicates == 0 || c.idConflicts == 0 || c.dlq != c.idConflicts {
		t.Errorf("counts %+v: want redeliveries dropped and reuses dead-lettered", c)
	}
	t.Logf("dedup set %d ids, series %d records, too late %d, duplicates %d, reused ids %d", len(tk.seen), held, c.tooLate, c.duplicates, c.idConflicts)
}

// changelog is the compacted view of a scorer-state partition: the latest
// value per key, with tombstones deleting.
type changelog map[string][]byte

func (cl changelog) apply(rs []*kgo.Record) {
	for _, r := range rs {
		if r.Value == nil {
			delete(cl, string(r.Key))
		} else {
			cl[string(r.Key)] = r.Value
		}
	}
}

func restoreTask(t testing.TB, partition int32, p *taskParams, cl changelog) *task {
	t.Helper()
	tk := newTask(partition, p)
	for k, v := range cl {
		if err := tk.load(k, v); err != nil {
			t.Fatal(err)
		}
	}
	tk.rebuildIndexes()
	return tk
}

// TestTaskRestoreIsByteIdentical runs one partition twice: once in one task
// with batches of 50, once with random batch sizes where after every batch,
// with some probability, the task "crashes": it is rebuilt from the
// changelog the committed batches wrote, and the uncommitted batch is
// replayed. Every scored value must be byte-identical.
func TestTaskRestoreIsByteIdentical(t *testing.T) {
	in := randomStream(t, 2, 30000, 40)
	p := testParams()

	run := func(batchSize func() int, crash func() bool) ([][]byte, int) {
		cl := changelog{}
		tk, c := newTask(2, p), newBatchCounts()
		var vals [][]byte
		crashes := 0
		for i := 0; i < len(in); {
			n := min(batchSize(), len(in)-i)
			var batch [][]byte
			for _, r := range in[i : i+n] {
				for _, out := range tk.process(r, &c) {
					batch = append(batch, out.Value)
				}
			}
			entries := tk.flush()
			if crash() { // the batch never commits: rewind
				tk = restoreTask(t, 2, p, cl)
				crashes++
				continue
			}
			cl.apply(entries)
			vals = append(vals, batch...)
			i += n
		}
		// The state rebuilt from the final changelog is the live state.
		back := restoreTask(t, 2, p, cl)
		for k, cs := range tk.cards {
			a, _ := cs.appendBinary(nil)
			b, _ := back.cards[k].appendBinary(nil)
			if !bytes.Equal(a, b) {
				t.Fatalf("card %s: restored state differs from the live one", k)
			}
		}
		if len(back.cards) != len(tk.cards) || len(back.seen) != len(tk.seen) || back.gen.MaxSeen() != tk.gen.MaxSeen() {
			t.Fatalf("restored %d cards, %d ids, max %d; live %d, %d, %d", len(back.cards), len(back.seen),
				back.gen.MaxSeen(), len(tk.cards), len(tk.seen), tk.gen.MaxSeen())
		}
		return vals, crashes
	}
	rng := rand.New(rand.NewPCG(5, 6))
	want, _ := run(func() int { return 50 }, func() bool { return false })
	got, crashes := run(func() int { return 1 + rng.IntN(400) }, func() bool { return rng.IntN(5) == 0 })
	if len(got) != len(want) {
		t.Fatalf("%d outputs with crashes, %d without", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("output %d differs after %d crashes:\n%s\n%s", i, crashes, got[i], want[i])
		}
	}
	t.Logf("%d outputs identical across %d crashes", len(want), crashes)
}

// randomStream is a partition's input: cards paying every few minutes over
// days, out of order by up to ~8s, some records late or too late, some
// transaction ids delivered twice, a few reused by other transactions,
// with locations.
func randomStream(t testing.TB, partition int32, n, cards int) []*kgo.Record {
	rng := rand.New(rand.NewPCG(uint64(partition), 99))
	var in []*kgo.Record
	var sent []event.Transaction
	clock := time.Unix(0, t0).UTC()
	for i := range n {
		clock = clock.Add(time.Duration(rng.IntN(int(10 * time.Second))))
		if i > 0 && rng.IntN(25) == 0 {
			x := sent[rng.IntN(len(sent))]
			if rng.IntN(5) == 0 { // another transaction reusing the id: dead-lettered
				x.AmountMinor++
			}
			in = append(in, txRecord(t, partition, int64(i), x))
			continue
		}
		et := clock.Add(-time.Duration(rng.IntN(int(8 * time.Second))))
		switch rng.IntN(100) {
		case 0:
			et = clock.Add(-30 * time.Second) // late
		case 1:
			et = clock.Add(-10 * time.Minute) // too late
		}
		x := testTx(fmt.Sprintf("r%d", i), fmt.Sprintf("c%d", rng.IntN(cards)), et)
		x.AmountMinor = 100 + rng.Int64N(20000)
		x.MerchantID = fmt.Sprintf("m%d", rng.IntN(30))
		x.MerchantCountry = []string{"DE", "FR", "US", "GB"}[rng.IntN(4)]
		lat, lon := 48+rng.Float64(), 11+rng.Float64()
		x.Lat, x.Lon = &lat, &lon
		sent = append(sent, x)
		in = append(in, txRecord(t, partition, int64(i), x))
	}
	return in
}

// TestTaskReplayIsByteIdentical: two tasks fed the same partition produce
// the same values; only the scored-at header may differ.
func TestTaskReplayIsByteIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var in []*kgo.Record
	for i := range 2000 {
		et := time.Unix(0, t0+int64(i)*int64(time.Second)-int64(rng.IntN(int(90*time.Second)))).UTC()
		in = append(in, txRecord(t, 2, int64(i), testTx(fmt.Sprintf("r%d", rng.IntN(1800)), fmt.Sprintf("c%d", rng.IntN(7)), et)))
	}
	run := func(now time.Time) [][]byte {
		p := testParams()
		p.now = func() time.Time { return now }
		tk, c := newTask(2, p), newBatchCounts()
		var vals [][]byte
		for _, r := range in {
			for _, out := range tk.process(r, &c) {
				vals = append(vals, out.Value)
			}
		}
		return vals
	}
	a, b := run(time.Now()), run(time.Now().Add(time.Hour))
	if len(a) != len(b) {
		t.Fatalf("%d vs %d outputs", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("output %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}
}

// BenchmarkTaskProcess measures decode, validate, de-duplicate, features,
// score and encode of one transaction (500 cards, 100 tx/s per partition).
func BenchmarkTaskProcess(b *testing.B) {
	benchmarkTaskProcess(b, testParams)
}

// BenchmarkTaskProcessDefault is BenchmarkTaskProcess with the default
// rules and model: the whole per-record cost of scoring.
func BenchmarkTaskProcessDefault(b *testing.B) {
	benchmarkTaskProcess(b, func() *taskParams {
		p, err := newTaskParams(DefaultConfig(), Deps{}, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		return p
	})
}

func benchmarkTaskProcess(b *testing.B, params func() *taskParams) {
	recs := make([]*kgo.Record, 100_000)
	for i := range recs {
		recs[i] = txRecord(b, 0, int64(i), testTx(fmt.Sprintf("tx-%d", i), fmt.Sprintf("card-%d", i%500), time.Unix(0, t0+int64(i)*int64(10*time.Millisecond)).UTC()))
	}
	var tk *task
	c := newBatchCounts()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(recs) == 0 { // a fresh task, so no id is a duplicate
			b.StopTimer()
			tk = newTask(0, params())
			b.StartTimer()
		}
		if out := tk.process(recs[i%len(recs)], &c); len(out) != 1 {
			b.Fatal("no output")
		}
	}
}

// TestBatchCountsMerge: merge adds every counter, so one added to
// batchCounts later cannot be forgotten by the parallel batch loop.
func TestBatchCountsMerge(t *testing.T) {
	o := newBatchCounts()
	v := reflect.ValueOf(&o).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Int { // unexported: set through its address
			reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetInt(int64(i + 1))
		}
	}
	o.decisions[event.DecisionDecline] = 2
	c := newBatchCounts()
	c.decisions[event.DecisionDecline] = 1
	c.merge(&o)
	c.merge(&o)
	cv := reflect.ValueOf(&c).Elem()
	for i := range cv.NumField() {
		if f := cv.Field(i); f.Kind() == reflect.Int && f.Int() != int64(2*(i+1)) {
			t.Errorf("%s = %d after two merges, want %d", cv.Type().Field(i).Name, f.Int(), 2*(i+1))
		}
	}
	if c.decisions[event.DecisionDecline] != 5 {
		t.Errorf("declines = %d, want 5", c.decisions[event.DecisionDecline])
	}
}

// TestTaskChangelogNamesEachCardOnce checks that a flush writes one entry
// per changed card, whether the card was changed once or many times, its
// state emptied and begun again within the batch, or deleted by eviction.
func TestTaskChangelogNamesEachCardOnce(t *testing.T) {
	tk := newTask(0, testParams())
	c := newBatchCounts()
	base := time.Unix(0, t0).UTC()
	later := base.Add(72 * time.Hour) // far beyond the look-back retention
	off := int64(0)
	send := func(id, card string, et time.Time) {
		t.Helper()
		off++
		if out := tk.process(txRecord(t, 0, off, testTx(id, card, et)), &c); len(out) != 1 || out[0].Topic != event.TopicScored {
			t.Fatalf("%s: got %v", id, out)
		}
	}
	entries := func() map[string][]*kgo.Record {
		got := make(map[string][]*kgo.Record)
		for _, r := range tk.flush() {
			if k := string(r.Key); k == "c1" || k == "c2" || k == "c3" {
				got[k] = append(got[k], r)
			}
		}
		return got
	}

	send("t1", "c1", base)
	send("t2", "c1", base.Add(time.Second))
	send("t3", "c2", base)
	send("t4", "c2", later)                  // moves the watermark past c1's state
	send("t5", "c1", later.Add(time.Second)) // c1 is emptied and begins again
	got := entries()
	if len(got) != 2 || len(got["c1"]) != 1 || len(got["c2"]) != 1 {
		t.Fatalf("first flush: entries per card %v, want c1 and c2 once each", got)
	}
	if got["c1"][0].Value == nil {
		t.Error("first flush: c1 has a tombstone, want its new state")
	}
	if got := entries(); len(got) != 0 {
		t.Fatalf("flush with nothing changed: %v", got)
	}

	send("t6", "c3", later.Add(memoryRetention+72*time.Hour)) // c1 and c2 expire wholly, long memory included
	got = entries()
	for _, k := range []string{"c1", "c2"} {
		if len(got[k]) != 1 || got[k][0].Value != nil {
			t.Errorf("second flush: %s entries %v, want one tombstone", k, got[k])
		}
	}
	if len(got["c3"]) != 1 || got["c3"][0].Value == nil {
		t.Errorf("second flush: c3 entries %v, want its state once", got["c3"])
	}
}
