// Package eosverify proves the scorer's exactly-once promise with real
// processes and real crashes.
//
// Run seeds a stream of transactions (out of order in event time, some
// late and too late, some delivered twice, a few undecodable) into two
// fresh `fraudstream broker` processes. Against the first, one scorer
// process scores everything without interruption: the reference. Against
// the second, two scorer processes share the work in one consumer group
// while the input is still arriving, and one of them is SIGKILLed at a
// random moment again and again and restarted. Afterwards the committed
// (read_committed) scored-transactions of the crashed run must hold every
// input transaction exactly once, nothing else, in input order per
// partition, each record byte for byte the reference's, and the DLQ every
// poison record exactly once.
//
// Brokers are stopped with SIGTERM only: kfake can lose track of
// transactions when it is SIGKILLed mid-transaction (see tools/devbroker),
// and the point is to crash the scorer, not the broker.
package eosverify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Config describes one verification.
type Config struct {
	// Binary is the fraudstream binary to run as broker and scorers.
	Binary string
	// Dir receives the brokers' data and every process's log.
	Dir string
	// Records is the number of input records, duplicates and poison
	// records included.
	Records int
	// Kills is how many times a scorer process is SIGKILLed.
	Kills int
	// Partitions of raw-transactions; default 6.
	Partitions int
	// Seed makes the input and the kill schedule reproducible; default 1.
	Seed uint64
	// FeedFor spreads producing the crashed run's input over this long,
	// so the scorers are working whenever they are killed; default 15s.
	FeedFor time.Duration
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.FeedFor == 0 {
		c.FeedFor = 15 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Report is what a verification saw.
type Report struct {
	Records    int // input records
	Distinct   int // distinct valid transaction ids
	Duplicates int // records repeating an earlier transaction
	Poison     int // undecodable or invalid records
	Late       int // scored records flagged too late (reference)

	Kills       int
	Scored      int // committed scored records of the crashed run
	Uncommitted int // scored records in the log that were aborted (crashed run)

	Restores          int           // restores logged by the crashed run's scorers
	RestoredRecords   int           // changelog records they read
	MaxRestore        time.Duration // the slowest one
	ReferenceDuration time.Duration // crash-free run, from first scorer start to caught up
	CrashedDuration   time.Duration // crashed run, from first scorer start to caught up
}

func (r *Report) String() string {
	return fmt.Sprintf("%d records (%d distinct transactions, %d duplicates, %d poison, %d too late); "+
		"%d SIGKILLs; %d committed scored records (and %d aborted ones in the log); "+
		"%d restores read %d changelog records, slowest %s; "+
		"reference run %s, crashed run %s",
		r.Records, r.Distinct, r.Duplicates, r.Poison, r.Late, r.Kills, r.Scored, r.Uncommitted,
		r.Restores, r.RestoredRecords, r.MaxRestore.Round(time.Millisecond),
		r.ReferenceDuration.Round(time.Millisecond), r.CrashedDuration.Round(time.Millisecond))
}

// Run performs one verification. A nil error means every check passed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if cfg.Binary == "" || cfg.Dir == "" || cfg.Records < 1 || cfg.Kills < 0 {
		return nil, errors.New("eosverify: Binary, Dir and a positive Records are required")
	}
	in := generate(cfg)
	rep := &Report{Records: len(in.records), Distinct: len(in.ids), Duplicates: in.duplicates, Poison: in.poison}
	cfg.Log.Info("input generated", "records", rep.Records, "distinct", rep.Distinct,
		"duplicates", rep.Duplicates, "poison", rep.Poison)

	ref, err := referenceRun(ctx, cfg, in, rep)
	if err != nil {
		return rep, fmt.Errorf("reference run: %w", err)
	}
	got, err := crashedRun(ctx, cfg, in, rep)
	if err != nil {
		return rep, fmt.Errorf("crashed run: %w", err)
	}
	if err := check(in, ref, got, rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// input is the generated stream, in production order, partitioned.
type input struct {
	records    []*kgo.Record
	ids        map[string]bool
	duplicates int
	poison     int
}

// generate makes cfg.Records records over two days of event time: cards
// active in a window that slides over the card space (so early cards go
// quiet and their state expires), out of order by up to 4s, about 1% late
// and 0.3% too late, 3% redeliveries of a recent transaction, 0.1% poison.
func generate(cfg Config) *input {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xe05))
	n := cfg.Records
	cards := max(n/20, 10)
	step := 48 * time.Hour / time.Duration(n)
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	countries := []string{"DE", "FR", "NL", "US", "GB", "ES"}
	in := &input{ids: make(map[string]bool, n)}
	var valid []*kgo.Record
	for i := range n {
		switch r := rng.IntN(1000); {
		case r == 0:
			in.records = append(in.records, record(cfg, "card-poison", fmt.Appendf(nil, `{"transaction_id":"bad-%d",`, i)))
			in.poison++
			continue
		case r < 30 && len(valid) > 0:
			old := valid[max(0, len(valid)-1-rng.IntN(5000))]
			in.records = append(in.records, record(cfg, string(old.Key), old.Value))
			in.duplicates++
			continue
		}
		card := int(float64(i)/float64(n)*float64(cards)*0.75) + rng.IntN(max(cards/4, 1))
		et := base.Add(time.Duration(i)*step - time.Duration(rng.IntN(4000))*time.Millisecond)
		switch r := rng.IntN(1000); {
		case r < 10:
			et = et.Add(-10*time.Second - time.Duration(rng.IntN(40_000))*time.Millisecond) // late
		case r < 13:
			et = et.Add(-2*time.Minute - time.Duration(rng.IntN(600))*time.Second) // too late
		}
		lat, lon := 40+float64(card%20)+rng.Float64()/10, float64(card%30)+rng.Float64()/10
		if rng.IntN(50) == 0 {
			lat, lon = -30+rng.Float64()*60, -100+rng.Float64()*200 // somewhere else entirely
		}
		x := event.Transaction{
			TransactionID:    fmt.Sprintf("t-%08d", i),
			CardID:           fmt.Sprintf("card-%06d", card),
			AmountMinor:      1 + rng.Int64N(50_000),
			Currency:         "EUR",
			MerchantID:       fmt.Sprintf("m-%d", rng.IntN(300)),
			MerchantCategory: "5411",
			MerchantCountry:  countries[rng.IntN(len(countries))],
			Channel:          event.ChannelCardPresent,
			Lat:              &lat,
			Lon:              &lon,
			EventTime:        et,
			IngestTime:       et.Add(time.Second),
		}
		v, err := x.Encode()
		if err != nil {
			panic(err) // cannot happen: every field is finite
		}
		r := record(cfg, x.CardID, v)
		in.records = append(in.records, r)
		valid = append(valid, r)
		in.ids[x.TransactionID] = true
	}
	return in
}

func record(cfg Config, key string, value []byte) *kgo.Record {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &kgo.Record{Topic: event.TopicRaw, Partition: int32(h.Sum32() % uint32(cfg.Partitions)), Key: []byte(key), Value: value}
}

// output is what a run committed.
type output struct {
	scored []*kgo.Record // by partition, in offset order
	dlq    []*kgo.Record
}

func referenceRun(ctx context.Context, cfg Config, in *input, rep *Report) (*output, error) {
	dir := filepath.Join(cfg.Dir, "reference")
	b, err := startBroker(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	defer b.stop(cfg.Log)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, in.records...).FirstErr(); err != nil {
		return nil, fmt.Errorf("seed input: %w", err)
	}
	begin := time.Now()
	sc, err := startScorer(cfg, dir, b.addr, "eos-reference")
	if err != nil {
		return nil, err
	}
	defer sc.kill()
	if err := waitCaughtUp(ctx, cl, 10*time.Minute); err != nil {
		return nil, err
	}
	rep.ReferenceDuration = time.Since(begin)
	if err := sc.terminate(); err != nil {
		return nil, err
	}
	cfg.Log.Info("reference run done", "duration", rep.ReferenceDuration)
	return readOutput(ctx, b.addr, kgo.ReadCommitted())
}

func crashedRun(ctx context.Context, cfg Config, in *input, rep *Report) (*output, error) {
	dir := filepath.Join(cfg.Dir, "crashed")
	b, err := startBroker(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	defer b.stop(cfg.Log)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	begin := time.Now()
	scorers := make([]*process, 2)
	names := []string{"eos-a", "eos-b"}
	for i := range scorers {
		if scorers[i], err = startScorer(cfg, dir, b.addr, names[i]); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, p := range scorers {
			p.kill()
		}
	}()

	// Feed the input in slices over FeedFor, in order (per partition
	// order is what the reference has too).
	feedErr := make(chan error, 1)
	go func() {
		const slices = 200
		chunk := max(len(in.records)/slices, 1)
		for i := 0; i < len(in.records); i += chunk {
			if err := cl.ProduceSync(ctx, in.records[i:min(i+chunk, len(in.records))]...).FirstErr(); err != nil {
				feedErr <- fmt.Errorf("feed input: %w", err)
				return
			}
			time.Sleep(cfg.FeedFor / slices)
		}
		feedErr <- nil
	}()

	// Kill a random scorer at random moments while the input flows, and
	// restart it after a short random pause.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5e1f))
	gap := cfg.FeedFor / time.Duration(cfg.Kills+1)
	for k := range cfg.Kills {
		pause := gap/2 + time.Duration(rng.Int64N(int64(gap)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		i := rng.IntN(len(scorers))
		if err := scorers[i].sigkill(); err != nil {
			return nil, err
		}
		rep.Kills++
		cfg.Log.Info("scorer SIGKILLed", "kill", k+1, "scorer", names[i], "after", time.Since(begin).Round(time.Millisecond))
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		if scorers[i], err = startScorer(cfg, dir, b.addr, names[i]); err != nil {
			return nil, err
		}
	}
	if err := <-feedErr; err != nil {
		return nil, err
	}
	if err := waitCaughtUp(ctx, cl, 10*time.Minute); err != nil {
		return nil, err
	}
	rep.CrashedDuration = time.Since(begin)
	for _, p := range scorers {
		if err := p.terminate(); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		if err := restoreStats(filepath.Join(dir, name+".log"), rep); err != nil {
			return nil, err
		}
	}
	cfg.Log.Info("crashed run done", "duration", rep.CrashedDuration, "kills", rep.Kills, "restores", rep.Restores)
	all, err := readTopic(ctx, b.addr, event.TopicScored, kgo.ReadUncommitted())
	if err != nil {
		return nil, err
	}
	out, err := readOutput(ctx, b.addr, kgo.ReadCommitted())
	if err != nil {
		return nil, err
	}
	rep.Uncommitted = len(all) - len(out.scored)
	return out, nil
}

// check compares the crashed run's output with the input and the
// reference.
func check(in *input, ref, got *output, rep *Report) error {
	var errs []error
	fail := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	refByID := make(map[string][]byte, len(ref.scored))
	for _, r := range ref.scored {
		s, err := event.DecodeScored(r.Value)
		if err != nil {
			return fmt.Errorf("reference record %d/%d: %w", r.Partition, r.Offset, err)
		}
		refByID[s.Transaction.TransactionID] = r.Value
		if s.Late {
			rep.Late++
		}
	}
	if len(refByID) != len(ref.scored) || len(refByID) != len(in.ids) {
		fail("reference scored %d records, %d distinct, for %d input transactions", len(ref.scored), len(refByID), len(in.ids))
	}

	seen := make(map[string]bool, len(got.scored))
	last := map[int32]int64{}
	for _, r := range got.scored {
		s, err := event.DecodeScored(r.Value)
		if err != nil {
			fail("scored record %d/%d: %w", r.Partition, r.Offset, err)
			continue
		}
		id := s.Transaction.TransactionID
		switch {
		case !in.ids[id]:
			fail("scored %s, which is not an input transaction", id)
		case seen[id]:
			fail("%s scored twice", id)
		}
		seen[id] = true
		if s.Partition != r.Partition {
			fail("%s: input partition %d scored on partition %d", id, s.Partition, r.Partition)
		}
		if l, ok := last[r.Partition]; ok && s.Offset <= l {
			fail("partition %d: input offset %d scored after %d", r.Partition, s.Offset, l)
		}
		last[r.Partition] = s.Offset
		if want, ok := refByID[id]; ok && string(want) != string(r.Value) {
			fail("%s differs from the crash-free run:\n got %s\nwant %s", id, r.Value, want)
		}
	}
	for id := range in.ids {
		if !seen[id] {
			fail("%s never scored", id)
		}
	}
	rep.Scored = len(got.scored)

	dlqCount := func(rs []*kgo.Record) map[string]int {
		m := map[string]int{}
		for _, r := range rs {
			m[fmt.Sprintf("%d/%s", r.Partition, r.Value)]++
		}
		return m
	}
	gotDLQ, refDLQ := dlqCount(got.dlq), dlqCount(ref.dlq)
	if len(got.dlq) != in.poison || len(gotDLQ) != len(refDLQ) {
		fail("DLQ holds %d records (%d distinct), want each of %d poison records once", len(got.dlq), len(gotDLQ), in.poison)
	}
	for k, n := range gotDLQ {
		if n != 1 || refDLQ[k] != 1 {
			fail("DLQ record %q: %d times, reference %d", k, n, refDLQ[k])
		}
	}
	return errors.Join(errs...)
}

// waitCaughtUp waits until the scorer group has committed the end of
// every raw-transactions partition.
func waitCaughtUp(ctx context.Context, cl *kgo.Client, limit time.Duration) error {
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(limit)
	for {
		ends, err := adm.ListEndOffsets(ctx, event.TopicRaw)
		if err == nil {
			var committed kadm.OffsetResponses
			committed, err = adm.FetchOffsets(ctx, groupID)
			if err == nil {
				left := int64(0)
				ends.Each(func(o kadm.ListedOffset) {
					c, ok := committed.Lookup(o.Topic, o.Partition)
					if !ok {
						left += o.Offset
					} else {
						left += max(o.Offset-c.At, 0)
					}
				})
				if left == 0 {
					return nil
				}
				err = fmt.Errorf("%d records not yet committed", left)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scorers did not catch up within %s: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readOutput(ctx context.Context, addr string, level kgo.IsolationLevel) (*output, error) {
	scored, err := readTopic(ctx, addr, event.TopicScored, level)
	if err != nil {
		return nil, err
	}
	dlq, err := readTopic(ctx, addr, event.TopicDLQ, level)
	if err != nil {
		return nil, err
	}
	return &output{scored: scored, dlq: dlq}, nil
}

// readTopic reads every partition of topic to its current end at the given
// isolation level; records come partition by partition, in offset order.
// Control records are read too, so the end is recognised even when the
// last offsets are transaction markers; they are not returned.
func readTopic(ctx context.Context, addr, topic string, level kgo.IsolationLevel) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	byPartition := map[int32][]*kgo.Record{}
	if len(want) > 0 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
			kgo.FetchIsolationLevel(level), kgo.KeepControlRecords())
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		next := map[int32]int64{}
		for done := 0; done < len(want); {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			fs := cl.PollFetches(pctx)
			cancel()
			if err := fs.Err0(); err != nil {
				return nil, fmt.Errorf("read %s: %w", topic, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				end := want[r.Partition]
				if r.Offset >= end || next[r.Partition] >= end {
					return
				}
				next[r.Partition] = r.Offset + 1
				if next[r.Partition] >= end {
					done++
				}
				if !r.Attrs.IsControl() {
					byPartition[r.Partition] = append(byPartition[r.Partition], r)
				}
			})
		}
	}
	var out []*kgo.Record
	ps := make([]int32, 0, len(byPartition))
	for p := range byPartition {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	for _, p := range ps {
		out = append(out, byPartition[p]...)
	}
	return out, nil
}

// restoreStats adds the "state restored" lines of a scorer's JSON log to
// rep.
func restoreStats(path string, rep *Report) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct {
			Msg      string        `json:"msg"`
			Records  int           `json:"records"`
			Duration time.Duration `json:"duration"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "state restored" {
			continue
		}
		rep.Restores++
		rep.RestoredRecords += l.Records
		rep.MaxRestore = max(rep.MaxRestore, l.Duration)
	}
	return sc.Err()
}

// groupID is the consumer group of the scorers of each run.
const groupID = "eos-verify"

// process is a child process: a broker or a scorer.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

func start(name, dir string, env []string, deathSig syscall.Signal, bin string, args ...string) (*process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_FORMAT=json"}, env...)
	cmd.Stdout, cmd.Stderr = log, log
	// If the verifier dies, its children go too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: deathSig}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), log: log}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// sigkill kills the process at once and waits for it to be gone.
func (p *process) sigkill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// kill is sigkill for cleanup paths, where the process may be gone.
func (p *process) kill() {
	select {
	case <-p.done:
	default:
		_ = p.sigkill()
	}
}

// terminate sends SIGTERM and expects a clean exit within 30s.
func (p *process) terminate() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early: %v (see %s)", p.name, p.err, p.log.Name())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	}
	if p.err != nil {
		return fmt.Errorf("%s: unclean exit after SIGTERM: %v (see %s)", p.name, p.err, p.log.Name())
	}
	return nil
}

func startScorer(cfg Config, dir, brokerAddr, txnID string) (*process, error) {
	return start(txnID, dir, []string{
		"KAFKA_BROKERS=" + brokerAddr,
		"SCORER_ADDR=127.0.0.1:0",
		"SCORER_GROUP_ID=" + groupID,
		"SCORER_TRANSACTIONAL_ID=" + txnID,
		// A killed member's partitions move after SessionTimeout; a
		// killed instance's open transaction is aborted when it comes
		// back (same transactional id) or after TransactionTimeout.
		"SCORER_SESSION_TIMEOUT=6s", // the least Kafka (and kfake) accept by default
		"SCORER_REBALANCE_TIMEOUT=10s",
		"SCORER_TRANSACTION_TIMEOUT=5s",
		"SCORER_MAX_BATCH_RECORDS=500",
	}, syscall.SIGKILL, cfg.Binary, "scorer")
}

// broker is a `fraudstream broker` process.
type broker struct {
	*process
	addr string
}

func startBroker(ctx context.Context, cfg Config, dir string) (*broker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// SIGTERM, never SIGKILL, even when the verifier itself dies.
	p, err := start("broker", dir, nil, syscall.SIGTERM, cfg.Binary, "broker",
		"--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--partitions", fmt.Sprint(cfg.Partitions))
	if err != nil {
		return nil, err
	}
	b := &broker{process: p, addr: addr}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.stop(cfg.Log)
		return nil, err
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		topics, err := kadm.NewClient(cl).ListTopics(ctx, event.TopicRaw, event.TopicState)
		if err == nil && len(topics) == 2 && topics.Error() == nil {
			return b, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("broker exited: %v (see %s)", p.err, p.log.Name())
		default:
		}
		if time.Now().After(deadline) {
			b.stop(cfg.Log)
			return nil, fmt.Errorf("broker at %s not ready after 30s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *broker) stop(log *slog.Logger) {
	if err := b.terminate(); err != nil {
		log.Warn("broker stop", "err", err)
	}
}

var portMu sync.Mutex

func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
