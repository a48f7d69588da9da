package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Accepted is the answer to a transaction Kafka acknowledged: where it is
// stored in raw-transactions.
type Accepted struct {
	TransactionID string `json:"transaction_id"`
	Partition     int32  `json:"partition"`
	Offset        int64  `json:"offset"`
}

// BatchResult is the outcome of one batch item, in the order of the items.
// Status is 202 with Partition and Offset set when Kafka acknowledged it,
// otherwise the item's problem status with Problem set.
type BatchResult struct {
	Index         int    `json:"index"`
	Status        int    `json:"status"`
	TransactionID string `json:"transaction_id,omitempty"`
	Partition     *int32 `json:"partition,omitempty"`
	Offset        *int64 `json:"offset,omitempty"`
	// Replayed is true for an item answered from its idempotency record
	// (sent before, or earlier in this batch) rather than produced again.
	Replayed bool     `json:"replayed,omitempty"`
	Problem  *Problem `json:"problem,omitempty"`
}

// BatchResponse is the body of a 207 answer to POST /v1/transactions/batch.
type BatchResponse struct {
	Accepted int           `json:"accepted"`
	Rejected int           `json:"rejected"`
	Results  []BatchResult `json:"results"`
}

// handleSingle serves POST /v1/transactions: 202 only once Kafka has it,
// and a retry with the same Idempotency-Key gets the first 202 again.
//
// Redis is asked once before the produce (rate limit and idempotency claim
// together, admission.Admit) and the answer is recorded after the response.
func (s *Service) handleSingle(w http.ResponseWriter, r *http.Request) {
	tx, canonical, idemKey, e := s.readSingle(w, r)
	if e != nil {
		// Every request is charged, valid or not, and 429 comes before
		// any other answer. The charge is detached from the request's cancellation: a body that
		// timed out or a client that left cancels it, and must not turn
		// the answer into a Redis failure.
		if le := s.adm.charge(w, r.WithContext(context.WithoutCancel(r.Context())), 1); le != nil {
			e = le
		}
		s.fail(w, r, e)
		return
	}
	kid := keyID(r.Context())
	it := newIdemItem(kid, idemKey, tx.TransactionID, canonical)
	t, e := s.adm.Admit(w, r, 1, []*idemItem{it})
	if e != nil {
		s.fail(w, r, e)
		return
	}
	switch it.outcome {
	case idemReplay:
		s.metrics.replays.WithLabelValues("single").Inc()
		w.Header().Set(ReplayedHeader, "true")
		writeRaw(w, it.replay.Status, it.replay.Body)
		return
	case idemTxConflict:
		s.fail(w, r, txIDConflict(tx.TransactionID))
		return
	case idemConflict:
		s.fail(w, r, &Error{Kind: KindIdempotencyConflict,
			Detail: fmt.Sprintf("Idempotency-Key %q was first used with a different transaction; use a new key for a new transaction", idemKey)})
		return
	case idemInProgress:
		s.fail(w, r, &Error{Kind: KindInProgress,
			Detail: fmt.Sprintf("a request with Idempotency-Key %q is still waiting for Kafka; retry later", idemKey)})
		return
	}
	// ingest_time is when the record leaves for Kafka, not when the request
	// arrived: a duplicate may have waited on the idempotency claim.
	rec, e := s.record(tx, canonical, s.now())
	if e != nil {
		t.release(r, t.items)
		s.fail(w, r, e)
		return
	}
	ctx, cancel := s.produceContext(r)
	defer cancel()
	a := s.produce(ctx, []*kgo.Record{rec})[0]
	if a.err != nil {
		t.release(r, t.items) // a retry may succeed
		s.logProduceFailure(r, a.err, 1)
		s.fail(w, r, s.produceError(a.err))
		return
	}
	out := Accepted{TransactionID: tx.TransactionID, Partition: a.partition, Offset: a.offset}.appendJSON(nil)
	writeRaw(w, http.StatusAccepted, out)
	t.record([][]byte{out})
}

// txIDConflict is the answer to a transaction reusing a registered
// transaction_id with other contents.
func txIDConflict(id string) *Error {
	return &Error{Kind: KindTransactionIDConflict,
		Detail: fmt.Sprintf("transaction_id %q was accepted earlier with different contents, from this or another API key; a new transaction needs a new transaction_id", id)}
}

// readSingle reads, decodes and validates the body of a single POST, and
// returns the transaction, its canonical encoding and its idempotency key.
func (s *Service) readSingle(w http.ResponseWriter, r *http.Request) (event.Transaction, []byte, string, *Error) {
	if _, e := mediaType(r, mediaJSON); e != nil {
		return event.Transaction{}, nil, "", e
	}
	idemKey, hasKey := r.Header.Get("Idempotency-Key"), len(r.Header.Values("Idempotency-Key")) > 0
	if hasKey {
		if e := checkIdempotencyKey(idemKey); e != nil {
			return event.Transaction{}, nil, "", e
		}
	}
	body, e := readBody(w, r, s.cfg.MaxBodyBytes)
	if e != nil {
		return event.Transaction{}, nil, "", e
	}
	tx, e := decodeTransaction(bodyString(body), s.now(), s.cfg.MaxSkew)
	if e != nil {
		return event.Transaction{}, nil, "", e
	}
	if !hasKey {
		idemKey = tx.TransactionID
	}
	canonical, err := tx.Encode()
	if err != nil {
		return event.Transaction{}, nil, "", &Error{Kind: KindInternal, Detail: "could not encode the transaction", Err: err}
	}
	return tx, canonical, idemKey, nil
}

// handleBatch serves POST /v1/transactions/batch. Once the body parses into
// items the answer is 207 Multi-Status whatever the items' fates, so a
// client always reads the per-item statuses; a bad item never sinks the
// good ones. Items for the same card keep their order in the topic, since
// they go to one partition in sequence. Each item is idempotent by its
// transaction_id (the Idempotency-Key header is not used here): a retried
// batch replays the items that were accepted and produces only the rest.
func (s *Service) handleBatch(w http.ResponseWriter, r *http.Request) {
	mt, e := mediaType(r, mediaNDJSON, mediaJSON)
	if e != nil {
		s.fail(w, r, e)
		return
	}
	body, e := readBody(w, r, s.cfg.MaxBatchBodyBytes)
	if e != nil {
		s.fail(w, r, e)
		return
	}
	items, e := splitBatch(mt, bodyString(body), s.cfg.MaxBatchItems)
	if e != nil {
		s.fail(w, r, e)
		return
	}
	now := s.now()
	kid := keyID(r.Context())
	n := len(items)
	resp := BatchResponse{Results: make([]BatchResult, n)}
	// Where accepted items were stored: the results point into it, one
	// allocation for the batch rather than one per item.
	stored := make([]Accepted, n)
	reject := func(i int, e *Error) {
		s.metrics.reject(e.Kind)
		p := e.problem()
		resp.Results[i].Status = p.Status
		resp.Results[i].Problem = &p
		resp.Rejected++
	}
	accept := func(i int, a Accepted, replayed bool) {
		stored[i] = a
		resp.Results[i].Status = http.StatusAccepted
		resp.Results[i].Partition = &stored[i].Partition
		resp.Results[i].Offset = &stored[i].Offset
		resp.Results[i].Replayed = replayed
		resp.Accepted++
	}

	// Decode and validate; valid items claim their transaction_id. The
	// canonical encodings share one buffer, and the items' keys and
	// fingerprints another (idemItem.init).
	var (
		txs        = make([]event.Transaction, n)
		canonicals = make([][]byte, n)
		cbuf       = make([]byte, 0, len(body)+n*len(`"schema":"",`+event.SchemaTransaction))
		idems      = make([]idemItem, 0, n) // claims point into it; never grows
		claims     = make([]*idemItem, 0, n)
		at         = make([]int, 0, n)       // at[j] is the item index of claims[j]
		claimOf    = make([]int, n)          // claimOf[i] is the claims index of item i
		first      = make(map[string]int, n) // transaction_id → index of its first item
		dupOf      map[int]int               // a repeat within this batch → its first item
		idemBuf    strings.Builder
	)
	idemBuf.Grow(n * (idemItemSize(kid, "", "") + 2*40)) // most ids are shorter
	for i, item := range items {
		resp.Results[i].Index = i
		if int64(len(item)) > s.cfg.MaxBodyBytes {
			reject(i, &Error{Kind: KindTooLarge, Detail: fmt.Sprintf("item is larger than %d bytes", s.cfg.MaxBodyBytes)})
			continue
		}
		tx, e := decodeTransaction(item, now, s.cfg.MaxSkew)
		if e != nil {
			reject(i, e)
			continue
		}
		resp.Results[i].TransactionID = tx.TransactionID
		txs[i] = tx
		if j, ok := first[tx.TransactionID]; ok {
			if dupOf == nil {
				dupOf = map[int]int{}
			}
			dupOf[i] = j
			continue
		}
		c0 := len(cbuf)
		c, err := tx.AppendEncode(cbuf)
		if err != nil {
			reject(i, &Error{Kind: KindInternal, Detail: "could not encode the transaction", Err: err})
			continue
		}
		cbuf = c
		first[tx.TransactionID] = i
		canonicals[i] = cbuf[c0:len(cbuf):len(cbuf)]
		idems = append(idems, idemItem{idx: i})
		it := &idems[len(idems)-1]
		it.init(&idemBuf, kid, tx.TransactionID, tx.TransactionID, canonicals[i])
		claimOf[i] = len(claims)
		claims = append(claims, it)
		at = append(at, i)
	}
	// The whole batch is charged, one unit per item valid or not, in the
	// same Redis call that claims the valid items; a refused batch claims
	// nothing and gets 429 as a whole, as does one Redis could not admit
	// (503, failing closed).
	t, e := s.adm.Admit(w, r, n, claims)
	if e != nil {
		s.fail(w, r, e)
		return
	}

	// Produce the claimed items; answer the others from their records.
	// ingest_time is stamped now, after any wait on the claims. The
	// records, their keys and values share one allocation each.
	produceAt, tsErr := s.now().UTC().MarshalJSON()
	var (
		slab  = make([]kgo.Record, 0, len(claims)) // recs point into it; never grows
		recs  = make([]*kgo.Record, 0, len(claims))
		recAt = make([]int, 0, len(claims)) // recAt[k] is the claims index of recs[k]
		vbuf  = make([]byte, 0, len(cbuf)+len(claims)*(len(`,"ingest_time":`)+len(produceAt)+32))
	)
	for j, it := range claims {
		i := at[j]
		switch it.outcome {
		case idemReplay:
			var a Accepted
			if err := json.Unmarshal(it.replay.Body, &a); err != nil {
				reject(i, &Error{Kind: KindInternal, Detail: "unreadable idempotency record", Err: err})
				continue
			}
			s.metrics.replays.WithLabelValues("batch").Inc()
			accept(i, a, true)
		case idemTxConflict:
			reject(i, txIDConflict(txs[i].TransactionID))
		case idemConflict:
			reject(i, &Error{Kind: KindIdempotencyConflict,
				Detail: fmt.Sprintf("transaction_id %q was first sent with different contents", txs[i].TransactionID)})
		case idemInProgress:
			reject(i, &Error{Kind: KindInProgress,
				Detail: fmt.Sprintf("transaction_id %q is still being produced by another request; retry later", txs[i].TransactionID)})
		default:
			if tsErr != nil {
				reject(i, &Error{Kind: KindInternal, Detail: "could not encode the transaction", Err: fmt.Errorf("ingest_time: %w", tsErr)})
				continue
			}
			v0 := len(vbuf)
			vbuf = appendWithIngestTime(vbuf, canonicals[i], produceAt)
			k0 := len(vbuf)
			vbuf = append(vbuf, txs[i].CardID...) // one card, one partition, in order
			slab = append(slab, kgo.Record{
				Topic: event.TopicRaw,
				Key:   vbuf[k0:len(vbuf):len(vbuf)],
				Value: vbuf[v0:k0:k0],
			})
			recs = append(recs, &slab[len(slab)-1])
			recAt = append(recAt, j)
		}
	}
	answers := make([][]byte, len(claims)) // the 202 bodies, by claim
	var unavailable int
	var firstErr error
	if len(recs) > 0 {
		ctx, cancel := s.produceContext(r)
		defer cancel()
		abuf := make([]byte, 0, len(recs)*(64+len(`{"transaction_id":"","partition":,"offset":}`)))
		for k, a := range s.produce(ctx, recs) {
			j := recAt[k]
			i := at[j]
			if a.err != nil {
				if unavailable++; firstErr == nil {
					firstErr = a.err
				}
				reject(i, s.produceError(a.err))
				continue
			}
			acc := Accepted{TransactionID: txs[i].TransactionID, Partition: a.partition, Offset: a.offset}
			a0 := len(abuf)
			abuf = acc.appendJSON(abuf)
			answers[j] = abuf[a0:len(abuf):len(abuf)]
			accept(i, acc, false)
		}
	}
	// Failed items give their claims back before the answer goes out;
	// accepted ones are recorded after it (recorder.go).
	var failed []*idemItem
	for j, it := range claims {
		if it.outcome == idemOwned && answers[j] == nil {
			failed = append(failed, it)
		}
	}
	if len(failed) > 0 {
		t.release(r, failed)
	}

	// A repeat within the batch gets its first item's fate, or 409 when
	// its contents differ.
	for i, j := range dupOf {
		canonical, _ := txs[i].Encode()
		if newIdemItem(kid, txs[i].TransactionID, txs[i].TransactionID, canonical).fp != claims[claimOf[j]].fp {
			reject(i, &Error{Kind: KindTransactionIDConflict,
				Detail: fmt.Sprintf("transaction_id %q appears earlier in this batch with different contents; a new transaction needs a new transaction_id", txs[i].TransactionID)})
			continue
		}
		fr := resp.Results[j]
		if fr.Status == http.StatusAccepted {
			accept(i, Accepted{Partition: *fr.Partition, Offset: *fr.Offset}, true)
			continue
		}
		resp.Results[i].Status, resp.Results[i].Problem = fr.Status, fr.Problem
		resp.Rejected++
	}
	if unavailable > 0 {
		s.logProduceFailure(r, firstErr, unavailable)
		w.Header().Set("Retry-After", retryAfterSeconds(retryAfter))
	}
	writeBatchResponse(w, &resp)
	t.record(answers)
}

// record builds the Kafka record for a valid transaction from its
// canonical encoding (tx.Encode, IngestTime unset), stamping the time ingest
// received it.
func (s *Service) record(tx event.Transaction, canonical []byte, now time.Time) (*kgo.Record, *Error) {
	v, err := withIngestTime(canonical, now)
	if err != nil {
		return nil, &Error{Kind: KindInternal, Detail: "could not encode the transaction", Err: err}
	}
	// The Kafka timestamp is left to kgo (wall clock at produce): kgo
	// measures the delivery timeout from it, so it must not come from an
	// injected clock.
	return &kgo.Record{
		Topic: event.TopicRaw,
		Key:   []byte(tx.CardID), // one card, one partition, in order
		Value: v,
	}, nil
}

// produceContext bounds the wait for Kafka. It is detached from the
// request's own cancellation: at shutdown the server cancels request
// contexts, and a request whose record is already with Kafka should get
// its real answer, not a spurious 503. The deadline still bounds it.
func (s *Service) produceContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.ProduceTimeout)
}

// logProduceFailure logs once per request, however many records failed.
// Errors Kafka calls non-retriable (authorization, record size, topic
// configuration) need an operator, so they are logged as errors.
func (s *Service) logProduceFailure(r *http.Request, err error, n int) {
	level := slog.LevelWarn
	var ke *kerr.Error
	if errors.As(err, &ke) && !ke.Retriable {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "produce failed", "path", r.URL.Path, "key_id", keyID(r.Context()), "records", n, "err", err)
}

// withIngestTime returns the encoding of the transaction with ingest_time
// set to now, built from its canonical encoding: ingest_time is the last
// field of event.Transaction, so it is spliced in before the closing brace
// exactly as json.Marshal would write it, sparing a second reflection-based
// encode per transaction (TestWithIngestTime holds it to tx.Encode).
func withIngestTime(canonical []byte, now time.Time) ([]byte, error) {
	if len(canonical) < 2 || canonical[len(canonical)-1] != '}' {
		return nil, fmt.Errorf("canonical transaction %.40q is not a JSON object", canonical)
	}
	ts, err := now.UTC().MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("ingest_time: %w", err)
	}
	return appendWithIngestTime(make([]byte, 0, len(canonical)+len(ts)+16), canonical, ts), nil
}

// appendWithIngestTime is withIngestTime appending to b, given the JSON of
// the time (ts) and a canonical encoding known to end in '}' (tx.Encode's
// or AppendEncode's).
func appendWithIngestTime(b, canonical, ts []byte) []byte {
	b = append(b, canonical[:len(canonical)-1]...)
	b = append(b, `,"ingest_time":`...)
	b = append(b, ts...)
	return append(b, '}')
}

// appendJSON appends a's JSON, as json.Marshal writes it; a transaction_id
// holds only characters JSON does not escape.
func (a Accepted) appendJSON(b []byte) []byte {
	b = append(b, `{"transaction_id":"`...)
	b = append(b, a.TransactionID...)
	b = append(b, `","partition":`...)
	b = strconv.AppendInt(b, int64(a.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, a.Offset, 10)
	return append(b, '}')
}

// writeBatchResponse writes resp as writeJSON would, appending the
// results by hand: reflection over a thousand results was 8 % of the
// batch path's CPU. Problems, whose details may quote client input, still
// go through encoding/json. TestBatchResponseJSON holds it to writeJSON.
func writeBatchResponse(w http.ResponseWriter, resp *BatchResponse) {
	b := make([]byte, 0, 64+len(resp.Results)*72)
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(resp.Accepted), 10)
	b = append(b, `,"rejected":`...)
	b = strconv.AppendInt(b, int64(resp.Rejected), 10)
	b = append(b, `,"results":`...)
	if resp.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range resp.Results {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = resp.Results[i].appendJSON(b); err != nil {
				// Not reachable for the types involved; answer anyway.
				writeJSON(w, http.StatusMultiStatus, resp)
				return
			}
		}
		b = append(b, ']')
	}
	b = append(b, '}', '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusMultiStatus)
	_, _ = w.Write(b)
}

// appendJSON appends r as encoding/json writes it.
func (r *BatchResult) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(r.Index), 10)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	if r.TransactionID != "" {
		b = append(b, `,"transaction_id":`...)
		if plainJSON(r.TransactionID) { // always, for a validated id
			b = append(b, '"')
			b = append(b, r.TransactionID...)
			b = append(b, '"')
		} else {
			q, err := json.Marshal(r.TransactionID)
			if err != nil {
				return b, err
			}
			b = append(b, q...)
		}
	}
	if r.Partition != nil {
		b = append(b, `,"partition":`...)
		b = strconv.AppendInt(b, int64(*r.Partition), 10)
	}
	if r.Offset != nil {
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, *r.Offset, 10)
	}
	if r.Replayed {
		b = append(b, `,"replayed":true`...)
	}
	if r.Problem != nil {
		p, err := json.Marshal(r.Problem)
		if err != nil {
			return b, err
		}
		b = append(b, `,"problem":`...)
		b = append(b, p...)
	}
	return append(b, '}'), nil
}

// plainJSON reports whether encoding/json writes s between quotes as it is.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
