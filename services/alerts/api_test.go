package alerts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// client is a tiny JSON HTTP client for the API tests.
type client struct {
	t     *testing.T
	base  string
	token string
}

func (c client) do(method, path string, body any, out any) (int, http.Header) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			c.t.Errorf("%s %s: %d with Content-Type %q, want application/problem+json: %s", method, path, resp.StatusCode, ct, b)
		}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// record returns a scored record on card with the given decision and
// event time.
func record(id, card, decision string, at time.Time, partition int32) *kgo.Record {
	s := scored(id, decision)
	s.Transaction.CardID = card
	s.Transaction.EventTime = at
	v, _ := s.Encode()
	return &kgo.Record{Key: []byte(card), Value: v, Partition: partition}
}

func TestAnalystAPI(t *testing.T) {
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	c := client{t: t, base: "http://" + svc.Addr()}
	p := newProducer(t, brokers)

	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	decisions := []string{event.DecisionApprove, event.DecisionReview, event.DecisionDecline}
	var recs []*kgo.Record
	for i := range 60 {
		recs = append(recs, record(fmt.Sprintf("api-%02d", i), fmt.Sprintf("card-%d", i%4), decisions[i%3],
			base.Add(time.Duration(i/2)*time.Second), int32(i%testPartitions)))
	}
	p.txn(true, recs...)
	waitCount(t, svc.Store(), 60)

	// listAll pages through path with the given page size.
	listAll := func(path string, limit int) []string {
		var ids []string
		next := ""
		for range 100 {
			var pg page
			u := path + "&limit=" + fmt.Sprint(limit)
			if next != "" {
				u += "&cursor=" + url.QueryEscape(next)
			}
			if code, _ := c.do("GET", u, nil, &pg); code != 200 {
				t.Fatalf("GET %s = %d", u, code)
			}
			for _, it := range pg.Items {
				ids = append(ids, it.Transaction.TransactionID)
				if it.Kafka == nil {
					t.Fatalf("list item without its kafka position")
				}
			}
			if pg.NextCursor == "" {
				return ids
			}
			next = pg.NextCursor
		}
		t.Fatal("pagination did not end")
		return nil
	}
	// expect lists the ids of recs matching keep, newest first.
	expect := func(keep func(i int) bool) []string {
		var out []string
		for i := 59; i >= 0; i-- {
			if keep(i) {
				out = append(out, fmt.Sprintf("api-%02d", i))
			}
		}
		return out
	}
	t.Run("Filters and pagination", func(t *testing.T) {
		from, to := base.Add(5*time.Second).Format(time.RFC3339), base.Add(20*time.Second).Format(time.RFC3339)
		tests := []struct {
			path string
			keep func(i int) bool
		}{
			{"/api/v1/alerts?", func(i int) bool { return i%3 != 0 }},
			{"/api/v1/alerts?decision=decline", func(i int) bool { return i%3 == 2 }},
			{"/api/v1/alerts?decision=review,decline&card_id=card-1", func(i int) bool { return i%3 != 0 && i%4 == 1 }},
			{"/api/v1/alerts?from=" + from + "&to=" + to, func(i int) bool { return i%3 != 0 && i/2 >= 5 && i/2 < 20 }},
			{"/api/v1/cards/card-2/transactions?", func(i int) bool { return i%4 == 2 }},
			{"/api/v1/cards/card-2/transactions?decision=approve", func(i int) bool { return i%4 == 2 && i%3 == 0 }},
		}
		for _, tt := range tests {
			want := expect(tt.keep)
			for _, limit := range []int{1, 3, 50} {
				if got := listAll(tt.path, limit); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s limit %d:\n got %v\nwant %v", tt.path, limit, got, want)
				}
			}
		}
	})
	t.Run("Pages stay stable while rows arrive", func(t *testing.T) {
		var first page
		c.do("GET", "/api/v1/alerts?limit=5", nil, &first)
		// Newer alerts arrive between pages: they do not shift page two.
		p.txn(true, record("api-new", "card-9", event.DecisionDecline, base.Add(time.Hour), 0))
		waitCount(t, svc.Store(), 61)
		var second page
		c.do("GET", "/api/v1/alerts?limit=5&cursor="+url.QueryEscape(first.NextCursor), nil, &second)
		all := expect(func(i int) bool { return i%3 != 0 })
		var got []string
		for _, it := range append(first.Items, second.Items...) {
			got = append(got, it.Transaction.TransactionID)
		}
		if fmt.Sprint(got) != fmt.Sprint(all[:10]) {
			t.Fatalf("pages = %v, want %v", got, all[:10])
		}
	})
	t.Run("Bad parameters", func(t *testing.T) {
		for path, pointer := range map[string]string{
			"/api/v1/alerts?decision=approve":                                  "?decision",
			"/api/v1/alerts?from=yesterday":                                    "?from",
			"/api/v1/alerts?limit=0":                                           "?limit",
			"/api/v1/alerts?limit=501":                                         "?limit",
			"/api/v1/alerts?cursor=xyz":                                        "?cursor",
			"/api/v1/alerts?card_id=bad%20card":                                "?card_id",
			"/api/v1/alerts?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z": "?to",
		} {
			var pr problem
			if code, _ := c.do("GET", path, nil, &pr); code != 400 || len(pr.Errors) == 0 || pr.Errors[0].Pointer != pointer {
				t.Errorf("%s = %d %+v, want 400 at %s", path, code, pr, pointer)
			}
		}
	})
	t.Run("Disposition", func(t *testing.T) {
		var l Label
		code, _ := c.do("POST", "/api/v1/alerts/api-02/disposition",
			map[string]string{"disposition": "confirmed_fraud", "note": "cardholder called", "analyst": "ana"}, &l)
		if code != 200 || l.Disposition != DispositionConfirmedFraud || l.Analyst != "ana" || l.CreatedAt.IsZero() {
			t.Fatalf("POST disposition = %d %+v", code, l)
		}
		code, _ = c.do("POST", "/api/v1/alerts/api-02/disposition", map[string]string{"disposition": "false_positive"}, &l)
		if code != 200 || l.Disposition != DispositionFalsePositive {
			t.Fatalf("relabel = %d %+v", code, l)
		}
		var detail itemView
		c.do("GET", "/api/v1/transactions/api-02", nil, &detail)
		if detail.Label == nil || detail.Label.Disposition != DispositionFalsePositive {
			t.Fatalf("detail label = %+v", detail.Label)
		}
		var pg page
		c.do("GET", "/api/v1/cards/card-2/transactions?limit=100", nil, &pg)
		found := false
		for _, it := range pg.Items {
			found = found || (it.Transaction.TransactionID == "api-02" && it.Label != nil)
		}
		if !found {
			t.Fatal("card history does not show the label")
		}
		var pr problem
		if code, _ := c.do("POST", "/api/v1/alerts/api-02/disposition", map[string]string{"disposition": "maybe"}, &pr); code != 422 || pr.Errors[0].Pointer != "/disposition" {
			t.Fatalf("bad disposition = %d %+v", code, pr)
		}
		if code, _ := c.do("POST", "/api/v1/alerts/nope/disposition", map[string]string{"disposition": "false_positive"}, &pr); code != 404 {
			t.Fatalf("unknown transaction = %d", code)
		}
		if code, _ := c.do("POST", "/api/v1/alerts/api-02/disposition", `{"disposition":"false_positive","extra":1}`, &pr); code != 400 {
			t.Fatalf("unknown field = %d", code)
		}
		// Exact-case keys, each once: a last-wins reader would store
		// confirmed_fraud here.
		for _, body := range []string{
			`{"disposition":"false_positive","disposition":"confirmed_fraud"}`,
			`{"disposition":"false_positive","Disposition":"confirmed_fraud"}`,
		} {
			if code, _ := c.do("POST", "/api/v1/alerts/api-02/disposition", body, &pr); code != 400 || !strings.Contains(pr.Detail, "/disposition") && !strings.Contains(pr.Detail, "/Disposition") {
				t.Fatalf("%s = %d %+v, want 400 naming the key", body, code, pr)
			}
		}
		req, _ := http.NewRequest("POST", c.base+"/api/v1/alerts/api-02/disposition", strings.NewReader(`disposition=false_positive`))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("form post = %d, want 415", resp.StatusCode)
		}
	})
}

func TestRulesAPI(t *testing.T) {
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	c := client{t: t, base: "http://" + svc.Addr()}

	var rs event.RuleSet
	if code, _ := c.do("GET", "/api/v1/rules", nil, &rs); code != 200 || rs.Version != 0 || len(rs.Rules) != 0 {
		t.Fatalf("GET before any = %d %+v", code, rs)
	}
	good := event.RuleSet{UpdatedBy: "ana", Rules: []event.Rule{
		{ID: "velocity", Expression: "count_1m >= 5 && !new_merchant", Weight: 0.6, ReasonCode: "VELOCITY_1M", Mode: event.ModeActive},
		{ID: "travel", Expression: "kmh_from_prev > 900", Weight: 0.5, ReasonCode: "IMPOSSIBLE_TRAVEL", Mode: event.ModeShadow},
	}}
	if code, _ := c.do("PUT", "/api/v1/rules", good, &rs); code != 200 || rs.Version != 1 || rs.UpdatedAt.IsZero() {
		t.Fatalf("PUT = %d %+v", code, rs)
	}
	good.Version = 1 // edited from version 1
	if code, _ := c.do("PUT", "/api/v1/rules", good, &rs); code != 200 || rs.Version != 2 {
		t.Fatalf("second PUT = %d %+v", code, rs)
	}
	var pr problem
	if code, _ := c.do("PUT", "/api/v1/rules", good, &pr); code != 409 {
		t.Fatalf("PUT from a stale version = %d %+v, want 409", code, pr)
	}

	// What was published is on the topic, for the scorer.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(event.TopicRules),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var versions []int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(versions) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got, err := event.DecodeRuleSet(r.Value)
			if err != nil || string(r.Key) != event.RuleSetKey {
				t.Fatalf("record %s: %v", r.Key, err)
			}
			versions = append(versions, got.Version)
		})
	}
	if fmt.Sprint(versions) != "[1 2]" {
		t.Fatalf("published versions = %v", versions)
	}

	// A restarted replica reads the latest version back from the topic.
	svc.stop()
	svc2 := start(t, testConfig(brokers, sqliteURL(t)), nil)
	c2 := client{t: t, base: "http://" + svc2.Addr()}
	if code, _ := c2.do("GET", "/api/v1/rules", nil, &rs); code != 200 || rs.Version != 2 || len(rs.Rules) != 2 || rs.UpdatedBy != "ana" {
		t.Fatalf("GET after restart = %d %+v", code, rs)
	}

	tests := []struct {
		name     string
		mutate   func(*event.RuleSet)
		pointers []string
	}{
		{"unknown feature", func(rs *event.RuleSet) { rs.Rules[0].Expression = "count_2m > 3" }, []string{"/rules/0/expression"}},
		{"not boolean", func(rs *event.RuleSet) { rs.Rules[1].Expression = "sum_1h + 1" }, []string{"/rules/1/expression"}},
		{"syntax", func(rs *event.RuleSet) { rs.Rules[0].Expression = "count_1m >= (" }, []string{"/rules/0/expression"}},
		{"structure and expression", func(rs *event.RuleSet) {
			rs.Rules[0].Weight = 3
			rs.Rules[1].Expression = "nope"
			rs.Rules[1].ReasonCode = "lower"
		}, []string{"/rules/0/weight", "/rules/1/reason_code", "/rules/1/expression"}},
		{"empty expression", func(rs *event.RuleSet) { rs.Rules[0].Expression = "" }, []string{"/rules/0/expression"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := good
			bad.Version = 0
			bad.Rules = append([]event.Rule(nil), good.Rules...)
			tt.mutate(&bad)
			var pr problem
			code, _ := c2.do("PUT", "/api/v1/rules", bad, &pr)
			var got []string
			for _, fe := range pr.Errors {
				got = append(got, fe.Pointer)
				if fe.Detail == "" {
					t.Errorf("%s: no detail", fe.Pointer)
				}
			}
			if code != 422 || fmt.Sprint(got) != fmt.Sprint(tt.pointers) {
				t.Fatalf("PUT = %d %v, want 422 at %v (%+v)", code, got, tt.pointers, pr)
			}
		})
	}
	if code, _ := c2.do("PUT", "/api/v1/rules", `{"rules": 5}`, &pr); code != 422 || pr.Errors[0].Pointer != "/rules" {
		t.Fatalf("wrong type = %d %+v", code, pr)
	}
	if code, _ := c2.do("PUT", "/api/v1/rules", `{"rules": [`, &pr); code != 400 {
		t.Fatalf("malformed = %d %+v", code, pr)
	}
	if code, _ := c2.do("GET", "/api/v1/rules", nil, &rs); code != 200 || rs.Version != 2 {
		t.Fatalf("a refused PUT changed the rules: %+v", rs)
	}
}

func TestRuleCheckerSeam(t *testing.T) {
	brokers := newCluster(t)
	svc, err := New(testConfig(brokers, sqliteURL(t)), Deps{Log: discardLog(), RuleChecker: func(rs event.RuleSet) error {
		ve := &event.ValidationError{Errors: []event.FieldError{{Pointer: "/rules/0/expression", Detail: "the scorer says no"}}}
		return ve
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, svc)
	c := client{t: t, base: "http://" + r.Addr()}
	var pr problem
	code, _ := c.do("PUT", "/api/v1/rules", event.RuleSet{Rules: []event.Rule{{ID: "a", Expression: "new_country", Weight: 0.1, ReasonCode: "A", Mode: "active"}}}, &pr)
	if code != 422 || len(pr.Errors) != 1 || pr.Errors[0].Detail != "the scorer says no" {
		t.Fatalf("PUT = %d %+v", code, pr)
	}
}

func TestStatsAPI(t *testing.T) {
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	c := client{t: t, base: "http://" + svc.Addr()}
	p := newProducer(t, brokers)

	w0 := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	stat := func(part int32, w int, rev int32, count, declined int64, wm time.Time) *kgo.Record {
		s := event.Stats{Partition: part, WindowStart: w0.Add(time.Duration(w) * time.Minute), WindowEnd: w0.Add(time.Duration(w+1) * time.Minute),
			Revision: rev, Count: count, Approved: count - declined, Declined: declined, Watermark: wm,
			LatencyP50Ms: 10, LatencyP99Ms: float64(40 + part)}
		v, _ := s.Encode()
		return &kgo.Record{Topic: event.TopicStats, Key: s.Key(), Value: v, Partition: part}
	}
	// Partition 0 is at window 3, partition 1 only at window 1: the
	// combined watermark is partition 1's, so windows 1 to 3 are provisional.
	p.txn(true,
		stat(0, 0, 0, 10, 1, w0.Add(1*time.Minute)),
		stat(0, 1, 0, 20, 2, w0.Add(2*time.Minute)),
		stat(0, 1, 1, 22, 2, w0.Add(3*time.Minute)), // a late revision of window 1
		stat(0, 3, 0, 5, 5, w0.Add(4*time.Minute)),
		stat(1, 0, 0, 7, 0, w0.Add(1*time.Minute)),
		stat(1, 1, 0, 3, 1, w0.Add(1*time.Minute+30*time.Second)),
	)
	var st statsResponse
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.do("GET", "/api/v1/stats", nil, &st)
		if len(st.PartitionWindows) == 5 && len(st.Partitions) == 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(st.Windows) != 3 || st.CombinedWatermark == nil {
		t.Fatalf("stats = %+v", st)
	}
	if want := w0.Add(90 * time.Second); !st.CombinedWatermark.Equal(want) {
		t.Errorf("combined watermark = %v, want %v", st.CombinedWatermark, want)
	}
	w := st.Windows
	if w[0].Count != 17 || w[0].Provisional || w[0].Partitions != 2 {
		t.Errorf("window 0 = %+v", w[0])
	}
	if w[1].Count != 25 || w[1].Declined != 3 || !w[1].Provisional || w[1].LatencyP99Ms != 41 {
		t.Errorf("window 1 = %+v (want the latest revision of partition 0 plus partition 1)", w[1])
	}
	if w[2].Count != 5 || w[2].DeclineRate != 1 || !w[2].Provisional {
		t.Errorf("window 3 = %+v", w[2])
	}
	if st.Partitions[0].Watermark == nil || st.Partitions[0].LagMs <= 0 {
		t.Errorf("partition 0 = %+v", st.Partitions[0])
	}
}

func TestStatsRetention(t *testing.T) {
	b := newStatsBook(discardLog(), 5*time.Minute)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 20 {
		b.apply(event.Stats{Partition: 0, WindowStart: t0.Add(time.Duration(i) * time.Minute), WindowEnd: t0.Add(time.Duration(i+1) * time.Minute)})
	}
	if got := len(b.snapshot().Windows); got != 5 {
		t.Fatalf("kept %d windows, want the 5 within 5 minutes of the newest", got)
	}
	// An old late revision arriving afterwards is not resurrected.
	b.apply(event.Stats{Partition: 0, WindowStart: t0, WindowEnd: t0.Add(time.Minute), Revision: 3})
	if got := len(b.snapshot().Windows); got != 5 {
		t.Fatalf("kept %d windows after a stale revision", got)
	}
}

func TestStreamResume(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			brokers := newCluster(t)
			svc := start(t, testConfig(brokers, b.url(t)), nil)
			base := "http://" + svc.Addr()
			p := newProducer(t, brokers)

			open := func(lastID string) (*bufio.Reader, func()) {
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/stream", nil)
				if lastID != "" {
					req.Header.Set("Last-Event-ID", lastID)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return bufio.NewReader(resp.Body), func() { cancel(); resp.Body.Close() }
			}
			// read returns the ids of n scored events and the last id seen.
			read := func(r *bufio.Reader, n int) ([]string, string) {
				var ids []string
				last := ""
				for len(ids) < n {
					ev := readEvent(t, r)
					var v scoredView
					if err := json.Unmarshal([]byte(ev["data"]), &v); err != nil {
						t.Fatalf("event %v: %v", ev, err)
					}
					ids = append(ids, v.Transaction.TransactionID)
					last = ev["id"]
				}
				return ids, last
			}
			r, closeStream := open("")
			r.ReadString('\n')
			p.txn(true, batchOf("first", 9)...)
			got, last := read(r, 9)
			closeStream()

			// Missed while disconnected: these must come from the database.
			p.txn(true, batchOf("missed", 12)...)
			waitCount(t, svc.Store(), 21)
			r, closeStream = open(last)
			defer closeStream()
			missed, _ := read(r, 12)
			p.txn(true, batchOf("after", 6)...)
			live, _ := read(r, 6)

			seen := map[string]int{}
			for _, id := range append(append(got, missed...), live...) {
				seen[id]++
			}
			for _, prefix := range []struct {
				name string
				n    int
			}{{"first", 9}, {"missed", 12}, {"after", 6}} {
				for i := range prefix.n {
					if id := fmt.Sprintf("%s-%d", prefix.name, i); seen[id] != 1 {
						t.Errorf("%s seen %d times", id, seen[id])
					}
				}
			}
			if len(seen) != 27 {
				t.Errorf("saw %d distinct records, want 27", len(seen))
			}
			if n := testutil.ToFloat64(svc.m.sseBackfilled); n != 12 {
				t.Errorf("backfilled %v records from the database, want 12", n)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "correct-horse-battery-staple"
	svc := start(t, cfg, nil)
	base := "http://" + svc.Addr()

	get := func(path string, h http.Header) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	protected := []string{"/api/v1/alerts", "/api/v1/transactions/x", "/api/v1/cards/c/transactions",
		"/api/v1/rules", "/api/v1/stats", "/api/v1/stream"}
	for _, path := range protected {
		if code := get(path, nil); code != 401 {
			t.Errorf("%s without credentials = %d, want 401", path, code)
		}
		if code := get(path, http.Header{"Authorization": {"Bearer wrong-token-wrong-token"}}); code != 401 {
			t.Errorf("%s with a wrong token = %d, want 401", path, code)
		}
	}
	for _, path := range []string{"/", "/static/app.js", "/healthz", "/api/v1/auth"} {
		if code := get(path, nil); code != 200 {
			t.Errorf("%s = %d, want 200 without credentials", path, code)
		}
	}
	if code := get("/api/v1/alerts", http.Header{"Authorization": {"Bearer " + cfg.Token}}); code != 200 {
		t.Errorf("bearer token = %d", code)
	}

	c := client{t: t, base: base}
	var pr problem
	if code, _ := c.do("POST", "/api/v1/login", map[string]string{"token": "nope"}, &pr); code != 401 {
		t.Fatalf("wrong login = %d", code)
	}
	var info authInfo
	code, h := c.do("POST", "/api/v1/login", map[string]string{"token": cfg.Token}, &info)
	if code != 200 || !info.Authenticated {
		t.Fatalf("login = %d %+v", code, info)
	}
	cookie := h.Get("Set-Cookie")
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, cfg.Token) {
		t.Fatalf("cookie %q: want HttpOnly, SameSite=Strict, and not the token itself", cookie)
	}
	name, value, _ := strings.Cut(strings.Split(cookie, ";")[0], "=")
	for _, path := range protected[:5] {
		if code := get(path, http.Header{"Cookie": {name + "=" + value}}); code != 200 && code != 404 {
			t.Errorf("%s with the session cookie = %d", path, code)
		}
	}
	if code := get("/api/v1/alerts", http.Header{"Cookie": {name + "=forged"}}); code != 401 {
		t.Errorf("forged cookie = %d", code)
	}
}
