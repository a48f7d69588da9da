// Package entity aggregates what the scorer sees across cards per merchant,
// device and IP, and keeps the resulting table of notable entities with
// its version history, so that a transaction can be joined with it as of
// a point in time.
//
// Two halves (docs/design/entities.md has the protocol and its reasons):
//
//   - Aggregator is the state of one entity-events partition: it buffers
//     visit and flag events until every scorer partition has promised no
//     earlier ones (progress events), then applies them in time order and
//     publishes the entities whose notable state changed, each stamped
//     with the completed time as its as-of time.
//   - Table is what every scorer reads from entity-features: per entity the
//     versions in force from their as-of times on, and how far each
//     aggregator partition is complete. Lookup(entity, T) is a function of
//     the topic's contents once Complete() ≥ T.
//
// Both are synchronous data structures driven by their callers; times are
// Unix milliseconds.
package entity

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// None is the completed time before any: no time is complete.
const None = math.MinInt64

// Config are the aggregator's horizons and thresholds.
type Config struct {
	// CompromiseWindow is how far back a merchant's visitors and flagged
	// visitors count; default 7 days. The scorer's merchant memory must not
	// be longer.
	CompromiseWindow time.Duration
	// MinFlagged is the number of distinct flagged visitors that makes a
	// merchant compromised (with MinFlaggedShare); default 3.
	MinFlagged int64
	// MinFlaggedShare is the least share of the merchant's visitors that
	// must be flagged; default 0.2, so a busy supermarket that a few
	// unlucky customers visited is not compromised (docs/detection.md has
	// the measurements these defaults come from).
	MinFlaggedShare float64
	// MinCards makes a device or IP notable when at least this many
	// distinct cards used it in 24 hours; default 3.
	MinCards int64
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.CompromiseWindow == 0 {
		c.CompromiseWindow = 7 * 24 * time.Hour
	}
	if c.MinFlagged == 0 {
		c.MinFlagged = 3
	}
	if c.MinFlaggedShare == 0 {
		c.MinFlaggedShare = 0.2
	}
	if c.MinCards == 0 {
		c.MinCards = 3
	}
	return c
}

const (
	hour = int64(time.Hour / time.Millisecond)
	day  = 24 * hour
)

// pending is a visit or flag event not yet applied.
type pending struct {
	Kind   string `json:"k"`
	Entity string `json:"e"`
	Card   string `json:"c"`
	Time   int64  `json:"t"`
}

// entState is one entity's history: its visits and its flags.
type entState struct {
	Visits cardLog `json:"v"`
	Flags  cardLog `json:"f"`
}

// cardLog counts the distinct cards whose last event lies in (c − h, c]
// for a few horizons h, incrementally: events are appended in time order
// (each advance applies times above the previous one, sorted), so each
// horizon's expired entries are a prefix of the log, passed by a pointer.
// An entry superseded by a later event of its card no longer counts.
// Invariant: Count[i] = the entries at or after Ptr[i] that are their
// card's last.
type cardLog struct {
	Base    int64            `json:"b"` // absolute index of Entries[0]
	Entries []logEntry       `json:"e"`
	Last    map[string]int64 `json:"l"` // card → absolute index of its last entry
	Ptr     []int64          `json:"p"`
	Count   []int64          `json:"c"`
}

type logEntry struct {
	Card string `json:"c"`
	T    int64  `json:"t"`
}

func (l *cardLog) empty() bool { return len(l.Last) == 0 }

func (l *cardLog) add(card string, t int64, horizons int) {
	if l.Last == nil {
		l.Last = make(map[string]int64)
		l.Ptr = make([]int64, horizons)
		l.Count = make([]int64, horizons)
		for i := range l.Ptr {
			l.Ptr[i] = l.Base
		}
	}
	if idx, ok := l.Last[card]; ok {
		if l.Entries[idx-l.Base].T >= t {
			return
		}
		for i := range l.Ptr {
			if idx >= l.Ptr[i] {
				l.Count[i]--
			}
		}
	}
	l.Last[card] = l.Base + int64(len(l.Entries))
	l.Entries = append(l.Entries, logEntry{card, t})
	for i := range l.Count {
		l.Count[i]++
	}
}

// advance expires, for each horizon, the entries at or before c − h, and
// drops the entries every horizon has passed. horizons are ascending.
func (l *cardLog) advance(c int64, horizons []int64) {
	if l.Last == nil {
		return
	}
	end := l.Base + int64(len(l.Entries))
	for i, h := range horizons {
		for l.Ptr[i] < end && l.Entries[l.Ptr[i]-l.Base].T <= c-h {
			if l.Last[l.Entries[l.Ptr[i]-l.Base].Card] == l.Ptr[i] {
				l.Count[i]--
			}
			l.Ptr[i]++
		}
	}
	oldest := l.Ptr[len(l.Ptr)-1] // the longest horizon's
	for l.Base < oldest {
		e := l.Entries[0]
		if l.Last[e.Card] == l.Base {
			delete(l.Last, e.Card)
		}
		l.Entries = l.Entries[1:]
		l.Base++
	}
}

// Aggregator is the state of one entity-events partition. Not safe for
// concurrent use.
//
// Invariant: every visit or flag event applied has a time at or before
// complete, and every event still pending a later one; published holds
// exactly the entities whose last published entry is notable.
type Aggregator struct {
	cfg       Config
	sources   int32
	progress  map[int32]int64 // scorer partition → the time through which it has written everything
	complete  int64
	pending   []pending
	entities  map[string]*entState
	published map[string]event.EntityEntry

	dirtyEnt  map[string]bool // entities changed since the last TakeChanges
	metaDirty bool
}

// NewAggregator returns an empty aggregator.
func NewAggregator(cfg Config) *Aggregator {
	return &Aggregator{
		cfg:       cfg.WithDefaults(),
		progress:  make(map[int32]int64),
		complete:  None,
		entities:  make(map[string]*entState),
		published: make(map[string]event.EntityEntry),
		dirtyEnt:  make(map[string]bool),
	}
}

// Complete is the time through which every event has been applied.
func (a *Aggregator) Complete() int64 { return a.complete }

// Add takes one entity-events record and returns the entries to publish,
// in a deterministic order, and whether Complete moved (the caller then
// publishes a completeness marker after them). A visit or flag at or
// before Complete (which a scorer's progress promise rules out) is
// counted just after it, never dropped.
func (a *Aggregator) Add(ev event.EntityEvent) (out []event.EntityEntry, advanced bool) {
	t := ev.Time.UnixMilli()
	switch ev.Kind {
	case event.EntityVisit, event.EntityFlag:
		if t <= a.complete {
			t = a.complete + 1
		}
		a.pending = append(a.pending, pending{Kind: ev.Kind, Entity: ev.Entity, Card: ev.CardID, Time: t})
		a.metaDirty = true
		return nil, false
	case event.EntityProgress:
		if ev.Sources != a.sources {
			// A changed partition count: progress of partitions that no
			// longer exist no longer holds anything back.
			a.sources = ev.Sources
			for s := range a.progress {
				if s >= a.sources {
					delete(a.progress, s)
				}
			}
		}
		if old, ok := a.progress[ev.Source]; !ok || t > old {
			a.progress[ev.Source] = t
			a.metaDirty = true
		}
		c := a.minProgress()
		if c <= a.complete {
			return nil, false
		}
		return a.advance(c), true
	}
	return nil, false
}

func (a *Aggregator) minProgress() int64 {
	if a.sources == 0 {
		return None
	}
	m := int64(math.MaxInt64)
	for s := range a.sources {
		p, ok := a.progress[s]
		if !ok {
			return None
		}
		m = min(m, p)
	}
	return m
}

// advance applies the pending events at or before c and evaluates, at c,
// every entity they touched and every published one (whose counts may have
// fallen as visits expired).
func (a *Aggregator) advance(c int64) []event.EntityEntry {
	slices.SortFunc(a.pending, func(x, y pending) int {
		return cmp.Or(cmp.Compare(x.Time, y.Time), strings.Compare(x.Entity, y.Entity),
			strings.Compare(x.Card, y.Card), strings.Compare(x.Kind, y.Kind))
	})
	touched := make(map[string]bool)
	n := 0
	for _, p := range a.pending {
		if p.Time > c {
			break
		}
		n++
		st := a.entities[p.Entity]
		if st == nil {
			st = &entState{}
			a.entities[p.Entity] = st
		}
		if p.Kind == event.EntityFlag {
			st.Flags.add(p.Card, p.Time, 1)
		} else {
			st.Visits.add(p.Card, p.Time, 3)
		}
		touched[p.Entity] = true
	}
	a.pending = slices.Delete(a.pending, 0, n)
	for e := range a.published {
		touched[e] = true
	}
	keys := make([]string, 0, len(touched))
	for e := range touched {
		keys = append(keys, e)
	}
	slices.Sort(keys)
	var out []event.EntityEntry
	for _, e := range keys {
		if entry, ok := a.evaluate(e, c); ok {
			out = append(out, entry)
		}
	}
	a.complete = c
	a.metaDirty = true
	return out
}

// Counts is an entity's aggregates at a time.
type Counts struct {
	Cards1h, Cards24h, Visitors, Flagged int64
}

// countAt advances st to time c and returns its aggregates: distinct
// cards whose last visit (flag) lies in (c − horizon, c].
func (a *Aggregator) countAt(st *entState, c int64) Counts {
	w := a.cfg.CompromiseWindow.Milliseconds()
	st.Visits.advance(c, []int64{hour, day, max(w, day)})
	st.Flags.advance(c, []int64{w})
	var k Counts
	if st.Visits.Last != nil {
		k.Cards1h, k.Cards24h = st.Visits.Count[0], st.Visits.Count[1]
		if w >= day {
			k.Visitors = st.Visits.Count[2]
		} else { // a window shorter than a day: count it from the entries
			for card, idx := range st.Visits.Last {
				_ = card
				if st.Visits.Entries[idx-st.Visits.Base].T > c-w {
					k.Visitors++
				}
			}
		}
	}
	if st.Flags.Last != nil {
		k.Flagged = st.Flags.Count[0]
	}
	return k
}

// Notable decides, by the entity's kind, whether counts k put it in the
// table, and whether a merchant is compromised.
func (c Config) Notable(entity string, k Counts) (notable, compromised bool) {
	if strings.HasPrefix(entity, event.EntityMerchant) {
		compromised = k.Flagged >= c.MinFlagged &&
			float64(k.Flagged) >= c.MinFlaggedShare*float64(max(k.Visitors, k.Flagged))
		return compromised, compromised
	}
	return k.Cards24h >= c.MinCards, false
}

// evaluate recomputes entity e at time c, evicts what no horizon reaches,
// and returns the entry to publish if its published state changed.
func (a *Aggregator) evaluate(e string, c int64) (event.EntityEntry, bool) {
	st := a.entities[e]
	var k Counts
	if st != nil {
		k = a.countAt(st, c)
		if st.Visits.empty() && st.Flags.empty() {
			delete(a.entities, e)
		}
	}
	a.dirtyEnt[e] = true
	notable, compromised := a.cfg.Notable(e, k)
	prev, was := a.published[e]
	if !notable {
		if !was {
			return event.EntityEntry{}, false
		}
		delete(a.published, e)
		return event.EntityEntry{Kind: event.EntryEntity, Entity: e, AsOf: time.UnixMilli(c).UTC()}, true
	}
	entry := event.EntityEntry{Kind: event.EntryEntity, Entity: e, AsOf: time.UnixMilli(c).UTC(), Notable: true,
		Cards1h: k.Cards1h, Cards24h: k.Cards24h, Visitors: k.Visitors, Flagged: k.Flagged, Compromised: compromised}
	if was {
		prev.AsOf = entry.AsOf
		prev.Schema = ""
		if prev == entry {
			return event.EntityEntry{}, false
		}
	}
	a.published[e] = entry
	return entry, true
}

// meta is the aggregator's partition-wide state in its changelog.
type meta struct {
	Sources   int32               `json:"sources"`
	Progress  map[int32]int64     `json:"progress"`
	Complete  int64               `json:"complete"`
	Pending   []pending           `json:"pending"`
	Published []event.EntityEntry `json:"published"`
}

// MetaKey is the changelog key of the partition-wide state; entity keys
// never start with NUL.
const MetaKey = "\x00meta"

// TakeChanges returns the changelog entries since the last call: each
// changed entity's state (nil: deleted), and MetaKey's if it changed,
// sorted by key.
func (a *Aggregator) TakeChanges() (keys []string, values [][]byte, err error) {
	for e := range a.dirtyEnt {
		keys = append(keys, e)
	}
	slices.Sort(keys)
	values = make([][]byte, len(keys))
	for i, e := range keys {
		if st, ok := a.entities[e]; ok {
			if values[i], err = json.Marshal(st); err != nil {
				return nil, nil, fmt.Errorf("encode entity %q: %w", e, err)
			}
		}
	}
	clear(a.dirtyEnt)
	if a.metaDirty {
		m := meta{Sources: a.sources, Progress: a.progress, Complete: a.complete, Pending: a.pending}
		for _, e := range slices.Sorted(maps.Keys(a.published)) {
			m.Published = append(m.Published, a.published[e])
		}
		v, err := json.Marshal(m)
		if err != nil {
			return nil, nil, fmt.Errorf("encode meta: %w", err)
		}
		keys, values = append(keys, MetaKey), append(values, v)
		a.metaDirty = false
	}
	return keys, values, nil
}

// Load installs one changelog entry during a restore; later entries of a
// key replace earlier ones.
func (a *Aggregator) Load(key string, value []byte) error {
	if key == MetaKey {
		var m meta
		if err := json.Unmarshal(value, &m); err != nil {
			return fmt.Errorf("entity meta: %w", err)
		}
		a.sources, a.complete, a.pending = m.Sources, m.Complete, m.Pending
		a.progress = m.Progress
		if a.progress == nil {
			a.progress = make(map[int32]int64)
		}
		clear(a.published)
		for _, e := range m.Published {
			a.published[e.Entity] = e
		}
		return nil
	}
	if value == nil {
		delete(a.entities, key)
		return nil
	}
	var st entState
	if err := json.Unmarshal(value, &st); err != nil {
		return fmt.Errorf("entity %q: %w", key, err)
	}
	a.entities[key] = &st
	return nil
}
