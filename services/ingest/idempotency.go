package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idempotency records live in Redis, one string per key, scoped by the API
// key's id so two clients can never see each other's answers:
//
//	key:   "idem:" + key_id + ":" + Idempotency-Key   (default: the transaction_id)
//	value: {"state":"pending","fp":"<sha256 hex>","token":"<random>"}   while producing
//	       {"state":"done","fp":"<sha256 hex>","status":202,"body":{…}}  afterwards
//
// fp is the SHA-256 of the canonical transaction (its encoding without
// ingest_time, so whitespace and field order do not matter). A request
// first claims its key with SET NX and a short TTL (pending), once its rate
// limit allowed it: a single POST inside the rate-limit script, a batch in
// one pipeline right after it (admit.go). Only the claimant produces.
// Afterwards its answer is stored for IdempotencyTTL, written after the
// response went out (recorder.go explains why that is safe), or, if the
// produce failed, its claim is deleted before the 503 so a retry can
// succeed.
//
// A request that finds a pending claim with the same fp waits for the
// claimant (polling every idemPollInterval, up to ProduceTimeout, which is
// how long the claimant can take) and then replays its answer; if the
// claimant is still not done it gets 409 idempotency-in-progress with
// Retry-After. This keeps concurrent retries of one transaction to one
// record while sparing clients a 409 in the common case.
//
// Batch items use their transaction_id and share this key space with single
// POSTs, so a transaction first sent in a batch and retried alone is
// replayed too.
const idemPrefix = "idem:"

// idemPollInterval is how often a duplicate re-reads a pending claim.
const idemPollInterval = 10 * time.Millisecond

// Idempotency record states.
const (
	idemPending = "pending"
	idemDone    = "done"
)

// ReplayedHeader marks an answer replayed from an idempotency record.
const ReplayedHeader = "Idempotent-Replayed"

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

type idemRecord struct {
	State  string          `json:"state"`
	FP     string          `json:"fp"`
	Token  string          `json:"token,omitempty"`
	Status int             `json:"status,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// idemOutcome is what a claim found.
type idemOutcome int

const (
	idemOwned      idemOutcome = iota // this request produces and records the answer
	idemUnrecorded                    // Redis failed open: produce, record nothing
	idemReplay                        // the first answer is in replay
	idemConflict                      // the key was used with another body
	idemInProgress                    // the first request did not finish in time
)

// idemItem is one transaction's idempotency claim.
type idemItem struct {
	key     string // Redis key
	fp      string
	pending string // the pending value this request wrote, if it owns the key

	outcome idemOutcome
	replay  idemRecord
}

func newIdemItem(keyID, idemKey string, canonical []byte) *idemItem {
	it := &idemItem{}
	var sb strings.Builder
	sb.Grow(idemItemSize(keyID, idemKey))
	it.init(&sb, keyID, idemKey, canonical)
	return it
}

// idemItemSize is how many bytes init writes for an item.
func idemItemSize(keyID, idemKey string) int {
	return len(idemPrefix) + len(keyID) + 1 + len(idemKey) + 2*sha256.Size
}

// init sets the key and fingerprint of a new item, writing both to sb and
// taking them from it, so that the items of a batch share one allocation.
func (it *idemItem) init(sb *strings.Builder, keyID, idemKey string, canonical []byte) {
	start := sb.Len()
	sb.WriteString(idemPrefix)
	sb.WriteString(keyID)
	sb.WriteByte(':')
	sb.WriteString(idemKey)
	mid := sb.Len()
	sum := sha256.Sum256(canonical)
	var fp [2 * sha256.Size]byte
	hex.Encode(fp[:], sum[:])
	sb.Write(fp[:])
	all := sb.String() // what is written stays put as sb grows
	it.key, it.fp = all[start:mid], all[mid:]
}

// checkIdempotencyKey accepts 1-255 visible ASCII characters.
func checkIdempotencyKey(k string) *Error {
	if len(k) == 0 || len(k) > maxIdempotencyKeyLen {
		return &Error{Kind: KindBadHeader, Detail: fmt.Sprintf("Idempotency-Key must be 1-%d characters", maxIdempotencyKeyLen)}
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return &Error{Kind: KindBadHeader, Detail: "Idempotency-Key may contain only visible ASCII characters"}
		}
	}
	return nil
}

// newToken returns a request's random claim token, which makes its pending
// value its own, so it deletes only its own claim.
func newToken() string {
	token := make([]byte, 12)
	_, _ = rand.Read(token)
	return hex.EncodeToString(token)
}

// pendingTTL outlives any produce and frees a crashed claimant's key.
func (s *Service) pendingTTL() time.Duration { return s.cfg.ProduceTimeout + 2*time.Second }

// pendingRecord is the value of a claim; fp and tok are hex, so nothing
// needs escaping.
func pendingRecord(fp, tok string) string {
	var sb strings.Builder
	sb.Grow(pendingRecordSize(fp, tok))
	return writePendingRecord(&sb, fp, tok)
}

func pendingRecordSize(fp, tok string) int { return 38 + len(fp) + len(tok) }

// writePendingRecord writes pendingRecord(fp, tok) to sb and returns it,
// sharing sb's buffer.
func writePendingRecord(sb *strings.Builder, fp, tok string) string {
	start := sb.Len()
	sb.WriteString(`{"state":"pending","fp":"`)
	sb.WriteString(fp)
	sb.WriteString(`","token":"`)
	sb.WriteString(tok)
	sb.WriteString(`"}`)
	return sb.String()[start:]
}

// resolve sets the outcome of an item whose key holds the record v:
// conflict, replay, or still in progress.
func (it *idemItem) resolve(v string) error {
	var rec idemRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return fmt.Errorf("idempotency record %s: %w", it.key, err)
	}
	switch {
	case rec.FP != it.fp:
		it.outcome = idemConflict
	case rec.State == idemDone:
		it.outcome, it.replay = idemReplay, rec
	default:
		it.outcome = idemInProgress
	}
	return nil
}

// wait polls items whose keys another request holds (idemInProgress), every
// idemPollInterval until deadline, claiming each key that is released
// meanwhile with tok. What is still held at the deadline stays
// idemInProgress. It returns an error only when Redis fails.
func (s *Service) wait(ctx context.Context, open []*idemItem, tok string, deadline time.Time) error {
	for len(open) > 0 && !time.Now().Add(idemPollInterval).After(deadline) {
		select {
		case <-time.After(idemPollInterval):
		case <-ctx.Done():
			return nil
		}
		var err error
		if open, err = s.claim(ctx, open, tok); err != nil {
			return err
		}
	}
	return nil
}

// claim tries to claim items with SET NX in one pipeline, reads the
// records of the keys already taken in a second, and resolves each item's
// outcome. It returns the items still held by another request
// (idemInProgress, or released meanwhile). A batch claims this way after
// its rate limit passed (admitItems); single POSTs claim inside
// admitScript.
func (s *Service) claim(ctx context.Context, items []*idemItem, tok string) ([]*idemItem, error) {
	pendingTTL := s.pendingTTL()
	pipe := s.rdb.Pipeline()
	sets := make([]*redis.BoolCmd, len(items))
	pending := make([]string, len(items))
	var sb strings.Builder // one buffer for all the pending records
	if len(items) > 0 {
		sb.Grow(len(items) * pendingRecordSize(items[0].fp, tok))
	}
	cmds := newSetCommands(s.rdb, pendingTTL, true, len(items))
	for i, it := range items {
		pending[i] = writePendingRecord(&sb, it.fp, tok)
		sets[i] = redis.NewBoolCmd(ctx, cmds.next(&it.key, &pending[i])...)
		_ = pipe.Process(ctx, sets[i]) // queues it
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("claim idempotency keys: %w", err)
	}
	var taken []*idemItem
	for i, it := range items {
		if sets[i].Val() {
			it.outcome, it.pending = idemOwned, pending[i]
		} else {
			taken = append(taken, it)
		}
	}
	if len(taken) == 0 {
		return nil, nil
	}
	pipe = s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(taken))
	for i, it := range taken {
		gets[i] = pipe.Get(ctx, it.key)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read idempotency records: %w", err)
	}
	var open []*idemItem
	for i, it := range taken {
		v, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			// Released or expired meanwhile: claim again.
			it.outcome = idemInProgress
			open = append(open, it)
			continue
		}
		if err := it.resolve(v); err != nil {
			return nil, err
		}
		if it.outcome == idemInProgress {
			open = append(open, it)
		}
	}
	return open, nil
}

// idemAnswer is the answer to record for an owned item: a body with its
// status, or, when body is nil, a failure that releases the claim.
type idemAnswer struct {
	status int
	body   []byte
}

// release deletes the claims of the owned items whose produce failed, so a
// retry is produced rather than refused or replayed. It is synchronous:
// the client's 503 must not overtake it. Its errors are logged, not
// returned; a claim that could not be deleted expires after pendingTTL.
func (s *Service) release(ctx context.Context, items []*idemItem) {
	pipe := s.rdb.Pipeline()
	n := 0
	for _, it := range items {
		if it.outcome != idemOwned || it.pending == "" {
			continue // not claimed by this request
		}
		n++
		// Delete only our own claim: compare-and-delete.
		releaseScript.Eval(ctx, pipe, []string{it.key}, it.pending)
	}
	if n == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.redisFailed("record_idempotency", err)
	}
}

// answerWrites returns the records to store for the owned items that got
// an answer. Their values share one buffer.
func answerWrites(items []*idemItem, answers []idemAnswer) []idemWrite {
	n, size := 0, 0
	for i, it := range items {
		if it.outcome == idemOwned && answers[i].body != nil {
			n++
			size += doneRecordSize(it.fp, answers[i].body)
		}
	}
	if n == 0 {
		return nil
	}
	ws := make([]idemWrite, 0, n)
	var sb strings.Builder
	sb.Grow(size)
	for i, it := range items {
		if it.outcome != idemOwned || answers[i].body == nil {
			continue
		}
		ws = append(ws, idemWrite{key: it.key, val: writeDoneRecord(&sb, it.fp, answers[i].status, answers[i].body)})
	}
	return ws
}

func doneRecordSize(fp string, body []byte) int { return 48 + len(fp) + len(body) }

// writeDoneRecord writes the done record to sb and returns it, sharing sb's
// buffer. It is what json.Marshal of idemRecord would write (the body is
// JSON already), without reflection: batches write thousands.
func writeDoneRecord(sb *strings.Builder, fp string, status int, body []byte) string {
	start := sb.Len()
	sb.WriteString(`{"state":"done","fp":"`)
	sb.WriteString(fp)
	sb.WriteString(`","status":`)
	var num [20]byte
	sb.Write(strconv.AppendInt(num[:0], int64(status), 10))
	sb.WriteString(`,"body":`)
	sb.Write(body)
	sb.WriteByte('}')
	return sb.String()[start:]
}

// setCommands builds pipelined SET commands for many keys with fewer
// allocations than go-redis's Set and SetNX, which box every argument and
// allocate an argument list per command: here the lists share one slice,
// and key and value are passed by pointer (go-redis writes a *string as
// the string), so each command costs only its command object. The options
// after key and value (the TTL, and NX) are taken from the command
// go-redis's own Set or SetNX builds for the same TTL, so the TTL's unit
// (EX for whole seconds, PX otherwise) and value are exactly go-redis's;
// TestSetCommandsMatchGoRedis holds the commands to theirs.
type setCommands struct {
	opts []any // after key and value
	args []any // the commands' argument lists, back to back
}

// newSetCommands prepares n commands SET key value <ttl> [NX]: as
// pipe.SetNX(ctx, key, value, ttl) when nx is true, otherwise as
// pipe.Set(ctx, key, value, ttl). It does not touch Redis.
func newSetCommands(rdb *redis.Client, ttl time.Duration, nx bool, n int) setCommands {
	ctx := context.Background()
	var model []any
	if nx {
		model = rdb.Pipeline().SetNX(ctx, "", "", ttl).Args()
	} else {
		model = rdb.Pipeline().Set(ctx, "", "", ttl).Args()
	}
	opts := model[3:]
	return setCommands{opts: opts, args: make([]any, 0, n*(3+len(opts)))}
}

// next returns the argument list of SET *key *val with the options. key
// and val must not change until the command has been sent.
func (c *setCommands) next(key, val *string) []any {
	start := len(c.args)
	c.args = append(c.args, "set", key, val)
	c.args = append(c.args, c.opts...)
	return c.args[start:len(c.args):len(c.args)]
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)
