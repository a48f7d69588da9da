package scorer

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func decodeStats(t testing.TB, rs []*kgo.Record) []event.Stats {
	t.Helper()
	var out []event.Stats
	for _, r := range rs {
		if r.Topic != event.TopicStats {
			t.Fatalf("stats record to topic %s", r.Topic)
		}
		st, err := event.DecodeStats(r.Value)
		if err != nil {
			t.Fatalf("decode stats %s: %v", r.Value, err)
		}
		if string(r.Key) != string(st.Key()) || r.Partition != st.Partition {
			t.Fatalf("stats record key %q partition %d, want %q %d", r.Key, r.Partition, st.Key(), st.Partition)
		}
		out = append(out, st)
	}
	return out
}

// TestStatsWindowsFireReFireFinal walks one partition through the life of
// two windows: the first firing when the watermark passes the end, a
// re-firing for a late record, a too-late record attributed to the window
// still open, the final firing at eviction, and latency from ingest_time.
func TestStatsWindowsFireReFireFinal(t *testing.T) {
	p := testParams()
	now := time.Unix(0, t0).Add(time.Hour).UTC()
	p.now = func() time.Time { return now }
	tk, c := newTask(1, p), newBatchCounts()
	base := time.Unix(0, t0).UTC() // minute-aligned: window W0 = [base, base+1m)
	off := int64(0)
	send := func(id, card string, at time.Duration, amount int64, ingest time.Duration) {
		t.Helper()
		x := testTx(id, card, base.Add(at))
		x.AmountMinor = amount
		if ingest != 0 {
			x.IngestTime = now.Add(-ingest)
		}
		off++
		if out := tk.process(txRecord(t, 1, off, x), &c); len(out) != 1 || out[0].Topic != event.TopicScored {
			t.Fatalf("%s: %d outputs, want one scored record", id, len(out))
		}
	}
	take := func() []event.Stats { return decodeStats(t, tk.stats.take()) }

	// W0: six payments of one card in 30 s (the sixth declines on
	// VELOCITY_1M), one of another card.
	for i := range 6 {
		send(fmt.Sprintf("a%d", i), "c1", time.Duration(i)*5*time.Second, 100, 40*time.Millisecond)
	}
	send("b0", "c2", 40*time.Second, 1000, 2*time.Second)
	if got := take(); len(got) != 0 {
		t.Fatalf("fired before the watermark passed the window: %+v", got)
	}
	// The watermark (max − 5 s) reaches 59.999 s with an event at 65 s.
	send("b1", "c2", 65*time.Second, 10, 0)
	got := take()
	if len(got) != 1 {
		t.Fatalf("got %d stats records, want W0's first firing: %+v", len(got), got)
	}
	w0 := got[0]
	if !w0.WindowStart.Equal(base) || !w0.WindowEnd.Equal(base.Add(time.Minute)) || w0.Revision != 1 || w0.Final ||
		w0.Count != 7 || w0.Approved != 6 || w0.Declined != 1 || w0.AmountMinor != 1600 || w0.Late != 0 || w0.TooLate != 0 ||
		!w0.Watermark.Equal(base.Add(60*time.Second)) {
		t.Errorf("W0 first firing = %+v", w0)
	}
	if w0.LatencyMaxMs != 2000 || w0.LatencyP50Ms < 38 || w0.LatencyP50Ms > 42 || w0.LatencyP99Ms < 1800 || w0.LatencyP99Ms > 2000 {
		t.Errorf("W0 latency p50 %v p99 %v max %v, want ~40, ~2000, 2000", w0.LatencyP50Ms, w0.LatencyP99Ms, w0.LatencyMaxMs)
	}

	// A late record of W0 (behind the watermark, within the lateness):
	// counted, and W0 fires again at the next watermark advance, not before.
	send("late", "c3", 50*time.Second, 5, 0)
	if got := take(); len(got) != 0 {
		t.Fatalf("re-fired without a watermark advance: %+v", got)
	}
	send("b2", "c2", 70*time.Second, 10, 0)
	got = take()
	if len(got) != 1 || got[0].Revision != 2 || got[0].Final || got[0].Count != 8 || got[0].Late != 1 || got[0].AmountMinor != 1605 {
		t.Fatalf("after a late record: %+v, want W0 revision 2 with 8 records, 1 late", got)
	}

	// Watermark to 125 s: W0 is evicted (its end passed by the 1 m
	// lateness): it fires a last time, Final, unchanged. W1 fires.
	send("b3", "c2", 130*time.Second, 10, 0)
	got = take()
	if len(got) != 2 {
		t.Fatalf("got %+v, want W0 final and W1's first firing", got)
	}
	slices.SortFunc(got, func(a, b event.Stats) int { return a.WindowStart.Compare(b.WindowStart) })
	if f := got[0]; !f.WindowStart.Equal(base) || !f.Final || f.Revision != 3 || f.Count != 8 || f.Late != 1 {
		t.Errorf("W0 at eviction = %+v, want final revision 3", f)
	}
	if w1 := got[1]; !w1.WindowStart.Equal(base.Add(time.Minute)) || w1.Final || w1.Revision != 1 || w1.Count != 2 {
		t.Errorf("W1 = %+v, want first firing with 2 records", w1)
	}

	// Too late (62 s ≤ 125 s − 1 m) but W1 is still open: TooLate of W1,
	// not in its counts. Too late for an evicted window (10 s): TooLate of
	// the window holding the watermark (W2, [120 s, 180 s)).
	send("tl1", "c4", 62*time.Second, 7, 0)
	send("tl0", "c4", 10*time.Second, 7, 0)
	if c.tooLate != 2 {
		t.Fatalf("too late = %d, want 2", c.tooLate)
	}
	send("b4", "c2", 183*time.Second, 10, 0) // watermark 178 s: W1 re-fires
	got = take()
	if len(got) != 1 || !got[0].WindowStart.Equal(base.Add(time.Minute)) || got[0].Revision != 2 || got[0].TooLate != 1 ||
		got[0].Count != 2 || got[0].Final {
		t.Errorf("got %+v, want W1 revision 2 with 1 too late, count 2", got)
	}
	send("b5", "c2", 186*time.Second, 10, 0) // watermark 181 s: W1 evicted, W2 fires
	got = take()
	slices.SortFunc(got, func(a, b event.Stats) int { return a.WindowStart.Compare(b.WindowStart) })
	if len(got) != 2 {
		t.Fatalf("got %+v, want W1 final and W2", got)
	}
	if w1 := got[0]; w1.Revision != 3 || !w1.Final || w1.TooLate != 1 || w1.Count != 2 {
		t.Errorf("W1 = %+v, want final revision 3", w1)
	}
	if w2 := got[1]; !w2.WindowStart.Equal(base.Add(2*time.Minute)) || w2.TooLate != 1 || w2.Count != 1 || w2.Revision != 1 || w2.Final {
		t.Errorf("W2 = %+v, want 1 record and 1 too late", w2)
	}

	// Changelog: open windows written, evicted W0 tombstoned.
	entries := tk.flush()
	keys := map[string]bool{}
	for _, r := range entries {
		if isStatsKey(string(r.Key)) {
			keys[string(r.Key)] = r.Value != nil
		}
	}
	for _, w := range []time.Duration{0, time.Minute} {
		if live, ok := keys[statsKey(base.Add(w).UnixMilli())]; !ok || live {
			t.Errorf("evicted window %s not tombstoned in the changelog: %v", w, keys)
		}
	}
	if !keys[statsKey(base.Add(2*time.Minute).UnixMilli())] || !keys[statsKey(base.Add(3*time.Minute).UnixMilli())] {
		t.Errorf("open windows missing from the changelog: %v", keys)
	}
}

// statsRun is the committed output of one partition run in batches.
type statsRun struct {
	scored []event.Scored
	stats  []*kgo.Record
}

// runWithCrashes processes in in batches of batchSize(); after each batch
// it "crashes" when crash() says so: the batch's output and changelog are
// thrown away, the task is restored from the committed changelog and the
// batch is processed again. It returns the committed output and the final
// task.
func runWithCrashes(t testing.TB, p *taskParams, in []*kgo.Record, batchSize func() int, crash func() bool) (statsRun, *task, changelog, int) {
	t.Helper()
	cl := changelog{}
	tk, c := newTask(in[0].Partition, p), newBatchCounts()
	var run statsRun
	crashes := 0
	for i := 0; i < len(in); {
		n := min(batchSize(), len(in)-i)
		var scored []event.Scored
		for _, r := range in[i : i+n] {
			for _, out := range tk.process(r, &c) {
				if out.Topic == event.TopicScored {
					scored = append(scored, decodeOut(t, out))
				}
			}
		}
		stats := tk.stats.take()
		entries := tk.flush()
		if crash() {
			tk = restoreTask(t, in[0].Partition, p, cl)
			crashes++
			continue
		}
		cl.apply(entries)
		run.scored = append(run.scored, scored...)
		run.stats = append(run.stats, stats...)
		i += n
	}
	return run, tk, cl, crashes
}

// TestStatsRestoreAndRecompute runs a partition with late, too-late and
// duplicate records twice: in fixed batches, and in random batches with
// crashes that restore the task (open windows included) from the changelog.
// The committed stats records must be byte-identical, the restored windows
// equal to the live ones, every window's revisions 1, 2, … with one Final
// last, and every Final window's counts equal to a recomputation from the
// committed scored records.
func TestStatsRestoreAndRecompute(t *testing.T) {
	in := randomStream(t, 2, 30000, 40)
	// A last record a day later evicts every window: all end Final.
	lastTx, _ := event.DecodeTransaction(in[len(in)-1].Value)
	in = append(in, txRecord(t, 2, int64(len(in)), testTx("the-end", "c0", lastTx.EventTime.Add(24*time.Hour))))
	p := testParams()
	want, _, _, _ := runWithCrashes(t, p, in, func() int { return 50 }, func() bool { return false })
	rng := rand.New(rand.NewPCG(8, 9))
	got, live, cl, crashes := runWithCrashes(t, p, in, func() int { return 1 + rng.IntN(60) }, func() bool { return rng.IntN(5) == 0 })
	if len(got.stats) != len(want.stats) {
		t.Fatalf("%d stats records with %d crashes, %d without", len(got.stats), crashes, len(want.stats))
	}
	for i := range want.stats {
		if !bytes.Equal(got.stats[i].Value, want.stats[i].Value) {
			t.Fatalf("stats record %d differs after %d crashes:\n%s\n%s", i, crashes, got.stats[i].Value, want.stats[i].Value)
		}
	}

	// The windows restored from the final changelog are the live ones.
	back := restoreTask(t, 2, p, cl)
	if len(back.stats.open) != len(live.stats.open) || back.stats.win.Len() != live.stats.win.Len() || len(live.stats.open) != live.stats.win.Len() {
		t.Fatalf("restored %d windows (%d in windowing), live %d (%d)", len(back.stats.open), back.stats.win.Len(),
			len(live.stats.open), live.stats.win.Len())
	}
	for start, acc := range live.stats.open {
		if b, ok := back.stats.open[start]; !ok || !bytes.Equal(b.appendBinary(nil), acc.appendBinary(nil)) {
			t.Fatalf("window %d: restored state differs from the live one", start)
		}
	}

	finals := checkStatsAgainstScored(t, decodeStats(t, got.stats), got.scored, true)
	t.Logf("%d stats records identical across %d crashes; %d final windows match the %d scored records",
		len(got.stats), crashes, finals, len(got.scored))
}

// checkStatsAgainstScored checks revisions and recomputes every Final
// window from the scored records: count, decisions and amount of the
// records not too late with event time in the window; late ones are those
// at or behind the watermark they were scored at; too-late ones in total
// (exactly when complete: every window but the last one's final, else at
// most, since open windows may hold too-late counts not emitted yet).
func checkStatsAgainstScored(t testing.TB, stats []event.Stats, scored []event.Scored, complete bool) int {
	t.Helper()
	type key struct {
		p     int32
		start int64
	}
	last := map[key]event.Stats{}
	for _, st := range stats {
		k := key{st.Partition, st.WindowStart.UnixMilli()}
		prev, seen := last[k]
		switch {
		case seen && prev.Final:
			t.Fatalf("window %v fired after its final firing: %+v", k, st)
		case st.Revision != prev.Revision+1:
			t.Fatalf("window %v: revision %d after %d", k, st.Revision, prev.Revision)
		}
		last[k] = st
	}
	want := map[key]*event.Stats{}
	tooLate := map[int32]int64{}
	for _, s := range scored {
		if s.Late {
			tooLate[s.Partition]++
			continue
		}
		et := s.Transaction.EventTime.UnixMilli()
		k := key{s.Partition, et - et%statsWindowSize.Milliseconds()}
		w := want[k]
		if w == nil {
			w = &event.Stats{}
			want[k] = w
		}
		w.Count++
		w.AmountMinor += s.Transaction.AmountMinor
		switch s.Decision {
		case event.DecisionApprove:
			w.Approved++
		case event.DecisionReview:
			w.Review++
		case event.DecisionDecline:
			w.Declined++
		}
		if !s.Transaction.EventTime.After(s.Watermark) {
			w.Late++
		}
	}
	finals := 0
	gotTooLate := map[int32]int64{}
	for k, st := range last {
		gotTooLate[k.p] += st.TooLate
		if !st.Final {
			continue
		}
		finals++
		w := want[k]
		if w == nil {
			w = &event.Stats{}
		}
		if st.Count != w.Count || st.Approved != w.Approved || st.Review != w.Review || st.Declined != w.Declined ||
			st.AmountMinor != w.AmountMinor || st.Late != w.Late {
			t.Errorf("final window %v: count %d (%d/%d/%d) amount %d late %d; scored records give %d (%d/%d/%d) %d %d",
				k, st.Count, st.Approved, st.Review, st.Declined, st.AmountMinor, st.Late,
				w.Count, w.Approved, w.Review, w.Declined, w.AmountMinor, w.Late)
		}
	}
	for p, n := range tooLate {
		if gotTooLate[p] > n || (complete && gotTooLate[p] != n) {
			t.Errorf("partition %d: windows count %d too late, the scored records %d", p, gotTooLate[p], n)
		}
	}
	if finals == 0 && len(scored) > 0 {
		t.Errorf("no final window among %d stats records", len(stats))
	}
	return finals
}

// TestStatsRestorePendingWindow commits a batch that ends right after a
// late record (its window fired, re-firing due at the next watermark
// advance) and restores the task from the changelog: the restored window
// must still re-fire, with the same revision as without the restore.
func TestStatsRestorePendingWindow(t *testing.T) {
	p := testParams()
	base := time.Unix(0, t0).UTC()
	recs := []*kgo.Record{
		txRecord(t, 0, 0, testTx("a", "c1", base.Add(10*time.Second))),
		txRecord(t, 0, 1, testTx("b", "c1", base.Add(70*time.Second))), // W0 fires
		txRecord(t, 0, 2, testTx("late", "c2", base.Add(20*time.Second))),
		txRecord(t, 0, 3, testTx("c", "c1", base.Add(75*time.Second))), // W0 re-fires
	}
	run := func(restoreAfter int) []event.Stats {
		tk, c := newTask(0, p), newBatchCounts()
		cl := changelog{}
		var out []event.Stats
		for i, r := range recs {
			tk.process(r, &c)
			out = append(out, decodeStats(t, tk.stats.take())...)
			if i == restoreAfter {
				cl.apply(tk.flush())
				tk = restoreTask(t, 0, p, cl)
			}
		}
		return out
	}
	want := run(-1)
	if len(want) != 2 || want[1].Revision != 2 || want[1].Late != 1 || want[1].Count != 2 {
		t.Fatalf("without restore: %+v, want W0 revisions 1 and 2", want)
	}
	for after := range len(recs) {
		if got := run(after); !slices.Equal(got, want) {
			t.Errorf("restored after record %d: %+v, want %+v", after, got, want)
		}
	}
}
