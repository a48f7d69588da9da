package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idempotency claims and answers in Redis, scoped by API key id. A request
// claims each transaction (SET NX) before it produces, and only the claimant
// produces; its 202 answers are written once, after the response
// (recorder.go); a retry finding the claim replays them, waits while the
// claim is younger than its pend, or takes over a stale one. Formats,
// crash windows and the rolling upgrade: docs/design/ingest-idempotency.md.
//
//	claim:   "idem:" + key_id + ":" + Idempotency-Key (default: the transaction_id)
//	         {"fp":"<sha256 hex>","t":"<token>","i":<index>,"ttl":<ms>,"pend":<ms>}
//	answers: "idemanswers:" + key_id + ":" + <token>, a line per item
const (
	idemPrefix    = "idem:"
	answersPrefix = "idemanswers:"
)

// The transaction-id registry (docs/design/transaction-ids.md): "txid:" +
// transaction_id → the first regFPLen hex digits of the claim's fp, written
// with SET NX in the claim's round trip. Another fp there is 409
// transaction-id-reused; an entry outlives a failed produce on purpose.
const regPrefix = "txid:"

// regFPLen is the length of a registry value: 8 bytes in hex.
const regFPLen = 16

// idemPollInterval is how often a duplicate re-reads a claim in progress.
const idemPollInterval = 10 * time.Millisecond

// States of the previous protocol's records, still read during a rolling
// upgrade (docs/design/ingest-idempotency.md#history-and-rolling-upgrade).
const (
	idemPending = "pending"
	idemDone    = "done"
)

// ReplayedHeader marks an answer replayed from an idempotency record.
const ReplayedHeader = "Idempotent-Replayed"

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// idemRecord is a decoded claim, or a record of the previous version
// (State set).
type idemRecord struct {
	FP string `json:"fp"`

	// A claim.
	Token string `json:"t,omitempty"`
	Index int    `json:"i"`
	TTL   int64  `json:"ttl"`  // ms, as written
	Pend  int64  `json:"pend"` // ms after the claim

	// The previous version's records.
	State  string          `json:"state,omitempty"`
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
	idemHeld                          // a claim with this fp: settle reads its answers
	idemTxConflict                    // the transaction_id is registered with another fp
)

// regState is what an item knows of its transaction_id's registry entry.
type regState int

const (
	regUnknown regState = iota // not written or read yet
	regWritten                 // this request wrote it
	regSame                    // it holds this item's fp
	regOther                   // it holds another fp
)

// idemItem is one transaction's idempotency claim.
type idemItem struct {
	key string // Redis key
	fp  string
	// The transaction_id's registry key and the fingerprint this item
	// writes there (a prefix of fp), and what it knows of the entry.
	regKey string
	regFP  string
	reg    regState
	idx    int    // the item's index in its request: its line in the answers
	claim  string // the claim this request writes for it, once built
	// pending is the claim this request wrote, if it owns the key.
	pending string

	outcome idemOutcome
	replay  idemRecord // idemReplay: Status and Body
	held    idemRecord // idemHeld: the claim found
	heldRaw string     // as stored, for the compare-and-set
	heldTTL int64      // its PTTL in ms when read
}

// claimer is what a request writes into each of its claims.
type claimer struct {
	keyID string
	tok   string        // the request's random token
	ttl   time.Duration // IdempotencyTTL, or pend if longer
	pend  time.Duration // how long after a claim this request may still produce
	// regTTL is how long a registry entry this request writes lives
	// (TransactionIDTTL, or ttl if longer).
	regTTL time.Duration
}

// newClaimer returns the claimer of a request of n items. A batch may wait
// up to ProduceTimeout for keys other requests hold before it produces, so
// its claims are in progress for that much longer than a single'ad. A claim
// lives at least that long, however short IdempotencyTTL is.
func (ad *admission) newClaimer(keyID string, n int) claimer {
	pend := ad.pendingTTL()
	if n > 1 {
		pend += ad.cfg.ProduceTimeout
	}
	ttl := max(ad.cfg.IdempotencyTTL, pend)
	return claimer{keyID: keyID, tok: newToken(), ttl: ttl, pend: pend, regTTL: max(ad.cfg.TransactionIDTTL, ttl)}
}

// answersKey is the Redis key of the answers of the request with token tok.
func (c claimer) answersKey(tok string) string {
	return answersPrefix + c.keyID + ":" + tok
}

func newIdemItem(keyID, idemKey, txID string, canonical []byte) *idemItem {
	it := &idemItem{}
	var sb strings.Builder
	sb.Grow(idemItemSize(keyID, idemKey, txID))
	it.init(&sb, keyID, idemKey, txID, canonical)
	return it
}

// idemItemSize is how many bytes init writes for an item.
func idemItemSize(keyID, idemKey, txID string) int {
	return len(idemPrefix) + len(keyID) + 1 + len(idemKey) + 2*sha256.Size + len(regPrefix) + len(txID)
}

// init sets the keys and fingerprints of a new item, writing them to sb
// and taking them from it, so that the items of a batch share one
// allocation.
func (it *idemItem) init(sb *strings.Builder, keyID, idemKey, txID string, canonical []byte) {
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
	reg := sb.Len()
	sb.WriteString(regPrefix)
	sb.WriteString(txID)
	all := sb.String() // what is written stays put as sb grows
	it.key, it.fp, it.regKey = all[start:mid], all[mid:reg], all[reg:]
	it.regFP = it.fp[:regFPLen]
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

// newToken returns a request's random token: 96 bits, so that two requests
// of one API key never share an answers key, in 16 URL-safe base64
// characters, which need no escaping in JSON or in a key.
func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// pendingTTL is how long after its claim a single POST may still be
// producing: its produce timeout, and 2s for the Redis round trips around
// it. After that, a claim without answers is stale.
func (ad *admission) pendingTTL() time.Duration { return ad.cfg.ProduceTimeout + 2*time.Second }

// claimSize bounds what writeClaim writes.
func claimSize(fp string, c claimer) int { return 36 + len(fp) + len(c.tok) + 3*20 }

// claimValue returns it's claim for c, building it on first use.
func (it *idemItem) claimValue(c claimer) string {
	if it.claim == "" {
		var sb strings.Builder
		sb.Grow(claimSize(it.fp, c))
		it.claim = writeClaim(&sb, it.fp, c, it.idx)
	}
	return it.claim
}

// writeClaim writes the claim of the item with fingerprint fp and index idx
// to sb and returns it, sharing sb's buffer. fp and the token need no
// escaping; TestClaimFormat holds it to json.Marshal of idemRecord.
func writeClaim(sb *strings.Builder, fp string, c claimer, idx int) string {
	start := sb.Len()
	var num [20]byte
	sb.WriteString(`{"fp":"`)
	sb.WriteString(fp)
	sb.WriteString(`","t":"`)
	sb.WriteString(c.tok)
	sb.WriteString(`","i":`)
	sb.Write(strconv.AppendInt(num[:0], int64(idx), 10))
	sb.WriteString(`,"ttl":`)
	sb.Write(strconv.AppendInt(num[:0], c.ttl.Milliseconds(), 10))
	sb.WriteString(`,"pend":`)
	sb.Write(strconv.AppendInt(num[:0], c.pend.Milliseconds(), 10))
	sb.WriteByte('}')
	return sb.String()[start:]
}

// resolve sets the outcome of an item whose key holds v, with pttl
// milliseconds to live: owned (our own claim: a call that ran twice),
// conflict, replay, in progress, or held (a claim whose answers settle
// must read).
func (it *idemItem) resolve(v string, pttl int64, c claimer) error {
	if v == it.claimValue(c) {
		it.outcome, it.pending = idemOwned, v
		return nil
	}
	var rec idemRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return fmt.Errorf("idempotency record %s: %w", it.key, err)
	}
	switch {
	case rec.FP != it.fp:
		it.outcome = idemConflict
	case rec.State == idemDone:
		it.outcome, it.replay = idemReplay, rec
	case rec.State == idemPending:
		it.outcome = idemInProgress // it expires by its own short TTL
	case rec.State == "" && rec.Token != "":
		it.outcome, it.held, it.heldRaw, it.heldTTL = idemHeld, rec, v, pttl
	default:
		return fmt.Errorf("idempotency record %s: unknown format %.60q", it.key, v)
	}
	return nil
}

// stale reports whether a held claim outlived its owner's pend without
// answers. A claim without a TTL (-1) cannot be aged and would never
// expire, so it is stale too.
func (it *idemItem) stale() bool {
	if it.heldTTL == -1 {
		return true
	}
	return it.held.TTL-it.heldTTL >= it.held.Pend
}

// wait polls items whose keys another request holds (idemInProgress), every
// idemPollInterval until deadline, claiming each key that is released or
// goes stale meanwhile. What is still held at the deadline stays
// idemInProgress. It returns an error only when Redis fails.
func (ad *admission) wait(ctx context.Context, open []*idemItem, c claimer, deadline time.Time) error {
	for len(open) > 0 && !time.Now().Add(idemPollInterval).After(deadline) {
		select {
		case <-time.After(idemPollInterval):
		case <-ctx.Done():
			return nil
		}
		var err error
		if open, err = ad.claim(ctx, open, c); err != nil {
			return err
		}
	}
	return nil
}

// claim tries to claim items with SET NX in one pipeline, reads the claims
// (and their PTTL) of the keys already taken in a second, and resolves
// each item's outcome, settling held claims (settle). It returns the items
// still held by another request (idemInProgress, or released meanwhile).
// A batch claims this way after its rate limit passed (admitItems); single
// POSTs claim inside admitScript.
func (ad *admission) claim(ctx context.Context, items []*idemItem, c claimer) ([]*idemItem, error) {
	pipe := ad.rdb.Pipeline()
	sets := make([]*redis.BoolCmd, len(items))
	var sb strings.Builder // one buffer for all the claims built here
	if len(items) > 0 && items[0].claim == "" {
		sb.Grow(len(items) * claimSize(items[0].fp, c))
	}
	cmds := newSetCommands(ad.rdb, c.ttl, true, len(items))
	regCmds := newSetCommands(ad.rdb, c.regTTL, true, len(items))
	regSets := make([]*redis.BoolCmd, len(items)) // nil where the entry is known
	for i, it := range items {
		if it.claim == "" {
			it.claim = writeClaim(&sb, it.fp, c, it.idx)
		}
		sets[i] = redis.NewBoolCmd(ctx, cmds.next(&it.key, &it.claim)...)
		_ = pipe.Process(ctx, sets[i]) // queues it
		if it.reg == regUnknown {
			regSets[i] = redis.NewBoolCmd(ctx, regCmds.next(&it.regKey, &it.regFP)...)
			_ = pipe.Process(ctx, regSets[i])
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("claim idempotency keys: %w", err)
	}
	var taken, regTaken []*idemItem
	for i, it := range items {
		if sets[i].Val() {
			it.outcome, it.pending = idemOwned, it.claim
		} else {
			taken = append(taken, it)
		}
		if regSets[i] != nil {
			if regSets[i].Val() {
				it.reg = regWritten
			} else {
				regTaken = append(regTaken, it)
			}
		}
	}
	if len(taken) == 0 && len(regTaken) == 0 {
		return nil, nil
	}
	pipe = ad.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(taken))
	pttls := make([]*redis.IntCmd, len(taken))
	for i, it := range taken {
		gets[i] = pipe.Get(ctx, it.key)
		pttls[i] = redis.NewIntCmd(ctx, "pttl", it.key) // in ms, -1 and -2 as they are
		_ = pipe.Process(ctx, pttls[i])
	}
	regGets := make([]*redis.StringCmd, len(regTaken))
	for i, it := range regTaken {
		regGets[i] = pipe.Get(ctx, it.regKey)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read idempotency records: %w", err)
	}
	for i, it := range regTaken {
		// Gone since the SET NX (it expired): no conflict to report.
		it.setReg(regGets[i].Val())
	}
	var open []*idemItem
	for i, it := range taken {
		if it.reg == regOther {
			continue // refused below, whatever its claim holds
		}
		v, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			// Released or expired meanwhile: claim again.
			it.outcome = idemInProgress
			open = append(open, it)
			continue
		}
		if err := it.resolve(v, pttls[i].Val(), c); err != nil {
			return nil, err
		}
		if it.outcome == idemInProgress {
			open = append(open, it)
		}
	}
	more, err := ad.settle(ctx, taken, c)
	if err != nil {
		return nil, err
	}
	return append(open, more...), ad.undoRegistry(ctx, items)
}

// setReg records the registry entry v read for the item's transaction_id
// ("" when there is none).
func (it *idemItem) setReg(v string) {
	switch {
	case v == "" || v == it.regFP:
		it.reg = regSame
	default:
		it.reg = regOther
	}
}

// undoRegistry settles the items of a batch whose registry entry and claim
// disagree, which the pipelined SET NX of both cannot rule out: an item
// whose transaction_id is registered with another fingerprint gets
// idemTxConflict and gives back the claim it wrote; a registry entry this
// request wrote for an item refused as an idempotency conflict (a claim
// older than the registry: an instance of the previous version, or an
// entry expired) is deleted, since that item is not accepted. Both are
// compare-and-delete, in one round trip, and only for such items.
func (ad *admission) undoRegistry(ctx context.Context, items []*idemItem) error {
	var pipe redis.Pipeliner
	for _, it := range items {
		switch {
		case it.reg == regOther:
			if it.outcome == idemOwned && it.pending != "" {
				pipe = pipeOf(ad.rdb, pipe)
				releaseScript.Eval(ctx, pipe, []string{it.key}, it.pending)
				it.pending = ""
			}
			it.outcome = idemTxConflict
		case it.reg == regWritten && it.outcome == idemConflict:
			pipe = pipeOf(ad.rdb, pipe)
			releaseScript.Eval(ctx, pipe, []string{it.regKey}, it.regFP)
			it.reg = regUnknown
		}
	}
	if pipe == nil {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("release claims of reused transaction ids: %w", err)
	}
	return nil
}

// pipeOf returns p, or a new pipeline when p is nil.
func pipeOf(rdb *redis.Client, p redis.Pipeliner) redis.Pipeliner {
	if p == nil {
		return rdb.Pipeline()
	}
	return p
}

// settle decides the items whose keys hold a claim with their fp
// (idemHeld): it reads each claimant's answers key once (a retried batch's
// items share one), replays the answers found, takes over the claims that
// have answers without one for their item or went stale, and leaves the
// rest in progress. It returns the items still in progress, including those
// whose takeover lost to another request.
func (ad *admission) settle(ctx context.Context, items []*idemItem, c claimer) ([]*idemItem, error) {
	type answers struct {
		key   string
		get   *redis.StringCmd
		lines []string
	}
	var byToken map[string]*answers
	pipe := ad.rdb.Pipeline()
	for _, it := range items {
		if it.outcome != idemHeld {
			continue
		}
		if byToken == nil {
			byToken = map[string]*answers{}
		}
		if _, ok := byToken[it.held.Token]; !ok {
			k := c.answersKey(it.held.Token)
			byToken[it.held.Token] = &answers{key: k, get: pipe.Get(ctx, k)}
		}
	}
	if byToken == nil {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read idempotency answers: %w", err)
	}
	var open, takeovers []*idemItem
	var noAnswers []bool // per takeover: the answers key must still be missing
	for _, it := range items {
		if it.outcome != idemHeld {
			continue
		}
		a := byToken[it.held.Token]
		v, err := a.get.Result()
		switch {
		case err == nil:
			if a.lines == nil {
				a.lines = strings.Split(v, "\n")
			}
			if i := it.held.Index; i >= 0 && i < len(a.lines) && a.lines[i] != "" {
				it.outcome = idemReplay
				it.replay = idemRecord{Status: http.StatusAccepted, Body: json.RawMessage(a.lines[i])}
				continue
			}
			// The claimant is done and got no 202 for this item, yet its
			// claim is still there: a release that failed.
			takeovers, noAnswers = append(takeovers, it), append(noAnswers, false)
		case !errors.Is(err, redis.Nil):
			return nil, fmt.Errorf("read idempotency answers: %w", err)
		case it.heldTTL == -2: // gone since it was read: claim again
			it.outcome = idemInProgress
			open = append(open, it)
		case it.stale():
			takeovers, noAnswers = append(takeovers, it), append(noAnswers, true)
		default:
			it.outcome = idemInProgress
			open = append(open, it)
		}
	}
	if len(takeovers) == 0 {
		return open, nil
	}
	pipe = ad.rdb.Pipeline()
	cas := make([]*redis.Cmd, len(takeovers))
	for i, it := range takeovers {
		keys := []string{it.key}
		if noAnswers[i] {
			keys = append(keys, c.answersKey(it.held.Token))
		}
		cas[i] = takeoverScript.Eval(ctx, pipe, keys, it.heldRaw, it.claimValue(c), c.ttl.Milliseconds())
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("take over idempotency keys: %w", err)
	}
	for i, it := range takeovers {
		if n, _ := cas[i].Int(); n == 1 {
			it.outcome, it.pending = idemOwned, it.claim
			continue
		}
		// Changed since it was read (another request took it over, or
		// the answers landed): read it again.
		it.outcome = idemInProgress
		open = append(open, it)
	}
	return open, nil
}

// takeoverScript replaces a stale claim (ARGV[1]) of KEYS[1] with this
// request's (ARGV[2], PX ARGV[3]), only if it is still there and, when
// KEYS[2] is given, that claimant's answers key still does not exist.
var takeoverScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 1 then
	return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// release deletes the claims of the owned items whose produce failed, so a
// retry is produced rather than refused or replayed. It is synchronous:
// the client's 503 must not overtake it. Its errors are logged, not
// returned; a claim that could not be deleted is taken over by a retry at
// once if the request's answers have no 202 for it, otherwise once it is
// stale.
func (ad *admission) release(ctx context.Context, items []*idemItem) {
	pipe := ad.rdb.Pipeline()
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
		ad.redisFailed("record_idempotency", err)
	}
}

// answerWrites returns the one write that records a request's answers: its
// answers key, holding one line per item up to the last one recorded,
// bodies[j] for items[j] when this request claimed it and got a 202, empty
// otherwise. items are in the order of their indexes; the 202 bodies are
// single-line JSON. It returns nil when there is nothing to record.
func answerWrites(c claimer, items []*idemItem, bodies [][]byte) []idemWrite {
	size, last := 0, -1
	for j, it := range items {
		if it.outcome == idemOwned && it.pending != "" && bodies[j] != nil {
			size, last = size+len(bodies[j]), it.idx
		}
	}
	if last < 0 {
		return nil
	}
	var sb strings.Builder
	sb.Grow(size + last) // the bodies and a newline before each line but the first
	line := 0
	for j, it := range items {
		if it.outcome != idemOwned || it.pending == "" || bodies[j] == nil {
			continue
		}
		for ; line < it.idx; line++ {
			sb.WriteByte('\n')
		}
		sb.Write(bodies[j])
	}
	return []idemWrite{{key: c.answersKey(c.tok), val: sb.String()}}
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

// releaseScript deletes KEYS[1] if it still holds ARGV[1]: a claim, or a
// registry entry.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0`)
