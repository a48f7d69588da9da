package alerts

import (
	"context"
	"github.com/fraudstream/fraudstream/internal/platform/configfield"
	"log/slog"
	"sync/atomic"
	"time"
)

// RetentionPolicy says how long stored transactions are kept, by event
// time (docs/design/storage.md). Zero keeps forever. Labeled transactions
// feed training and are kept longest: Validate refuses a policy that would
// delete a labeled transaction before an unlabeled one of its kind.
type RetentionPolicy struct {
	Approved time.Duration // approved, unlabeled
	Alerts   time.Duration // review or decline, unlabeled
	Labeled  time.Duration // labeled by an analyst, any decision
}

// Default retention: a week of approvals (the live view and card history
// of recent days), a quarter of alerts (analysts' queue and chargeback
// windows), two years of labels (training data).
const (
	DefaultRetainApproved = 7 * 24 * time.Hour
	DefaultRetainAlerts   = 90 * 24 * time.Hour
	DefaultRetainLabeled  = 730 * 24 * time.Hour
	// MinRetention is the shortest non-zero retention: a day partition is
	// dropped whole, so shorter retention would be rounded up anyway.
	MinRetention = 24 * time.Hour
	// DefaultRetentionInterval is how often the retention pass runs.
	DefaultRetentionInterval = 10 * time.Minute
)

// DefaultRetentionPolicy is the policy of DefaultConfig.
func DefaultRetentionPolicy() RetentionPolicy {
	return RetentionPolicy{Approved: DefaultRetainApproved, Alerts: DefaultRetainAlerts, Labeled: DefaultRetainLabeled}
}

// Validate checks the policy; its error names the Config field at fault.
func (p RetentionPolicy) Validate() error {
	for _, f := range []struct {
		field string
		d     time.Duration
	}{{"Retention.Approved", p.Approved}, {"Retention.Alerts", p.Alerts}, {"Retention.Labeled", p.Labeled}} {
		if f.d < 0 || (f.d > 0 && f.d < MinRetention) {
			return configfield.New("alerts", f.field, "must be 0 (keep forever) or at least %v, got %v", MinRetention, f.d)
		}
	}
	longer := func(a, b time.Duration) bool { return a == 0 || (b != 0 && a >= b) }
	if !longer(p.Labeled, p.Approved) || !longer(p.Labeled, p.Alerts) {
		return configfield.New("alerts", "Retention.Labeled", "labeled transactions are kept longest: %v is shorter than Config.Retention.Approved %v or Config.Retention.Alerts %v (0 means forever)",
			p.Labeled, p.Approved, p.Alerts)
	}
	return nil
}

// horizon is the event time before which a row kept for d has expired at
// now; the zero time when d is 0 (kept forever).
func horizon(d time.Duration, now time.Time) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return now.Add(-d)
}

// expired reports whether an unlabeled row with this decision and event
// time has expired at now.
func (p RetentionPolicy) expired(decision string, eventTime, now time.Time) bool {
	d := p.Alerts
	if decision == "approve" {
		d = p.Approved
	}
	h := horizon(d, now)
	return !h.IsZero() && eventTime.Before(h)
}

// live returns the rows that have not expired at now. A record arriving
// after its retention (a replay of old offsets, a very late event) is not
// stored: retention may already have deleted it, and storing it again
// would bring back a row the policy removed. Labels do not matter here: a
// labeled transaction is stored already, so its redelivery is skipped
// anyway.
func (p RetentionPolicy) live(rows []Record, now time.Time) []Record {
	if p.Approved == 0 && p.Alerts == 0 {
		return rows
	}
	out := rows[:0:0]
	for _, r := range rows {
		if !p.expired(r.Scored.Decision, r.Scored.Transaction.EventTime, now) {
			out = append(out, r)
		}
	}
	return out
}

// retentionState is what a store needs to apply the policy on arrival; it
// is set once at start-up, before the sink runs.
type retentionState struct {
	p   atomic.Pointer[RetentionPolicy]
	now func() time.Time
}

func (r *retentionState) policy() RetentionPolicy {
	if p := r.p.Load(); p != nil {
		return *p
	}
	return RetentionPolicy{}
}

func (r *retentionState) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// SetRetention sets the policy SaveBatch applies to arriving rows.
func (r *retentionState) SetRetention(p RetentionPolicy) { r.p.Store(&p) }

// MaintainResult is what one retention pass did.
type MaintainResult struct {
	Deleted           map[string]int // rows deleted per class: approved, alerts, labeled
	PartitionsDropped int
	PartitionsCreated int
	Skipped           bool // another replica holds the retention lock
}

func (m *MaintainResult) deleted(class string, n int) {
	if n == 0 {
		return
	}
	if m.Deleted == nil {
		m.Deleted = map[string]int{}
	}
	m.Deleted[class] += n
}

// retainer runs Store.Maintain every interval until ctx ends. A pass never
// blocks the sink: it deletes in small batches, each its own short
// transaction, and takes locks with a short lock_timeout, retrying on the
// next pass.
type retainer struct {
	store    Store
	policy   RetentionPolicy
	interval time.Duration
	log      *slog.Logger
	m        *metrics
}

func (r *retainer) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		res, err := r.store.Maintain(ctx, r.policy, time.Now())
		if err != nil && ctx.Err() == nil {
			r.log.Warn("retention pass failed; retrying at the next", "err", err, "retry_in", r.interval)
		}
		if r.m != nil {
			for class, n := range res.Deleted {
				r.m.retentionDeleted.WithLabelValues(class).Add(float64(n))
			}
			r.m.partitionsDropped.Add(float64(res.PartitionsDropped))
		}
		if n := res.PartitionsDropped; n > 0 || len(res.Deleted) > 0 {
			r.log.Info("retention pass", "deleted", res.Deleted, "partitions_dropped", n, "partitions_created", res.PartitionsCreated)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
