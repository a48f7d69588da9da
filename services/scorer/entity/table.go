package entity

import (
	"context"
	"sync"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Table is the entity-features table with its recent history: for each
// entity the entries in force from their as-of times on, and each
// aggregator partition's completeness marker. It is safe for concurrent
// use: one goroutine follows the topic (Apply), scorers look up.
//
// Determinism: entries of one aggregator partition come before its marker
// for the same or a later time (the aggregator writes them in one
// transaction, and entity-features has one partition), so once
// Complete() ≥ T, Lookup(e, T) no longer changes as more of the topic is
// read, whoever reads it and whenever.
type Table struct {
	keep time.Duration

	mu       sync.RWMutex
	versions map[string][]event.EntityEntry // ascending AsOf
	marks    map[int32]int64
	parts    int32
	complete int64
	advanced chan struct{} // closed and replaced when complete moves
}

// NewTable returns an empty table that keeps, per entity, the versions in
// force during the last keep of complete time (older lookups see the
// oldest version kept, so a replay older than keep may differ).
func NewTable(keep time.Duration) *Table {
	return &Table{keep: keep, versions: make(map[string][]event.EntityEntry), marks: make(map[int32]int64),
		complete: None, advanced: make(chan struct{})}
}

// Apply adds one entity-features record. Entries of an entity arrive in
// as-of order; a marker never moves its partition back.
func (t *Table) Apply(e event.EntityEntry) {
	at := e.AsOf.UnixMilli()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Kind {
	case event.EntryEntity:
		vs := t.versions[e.Entity]
		// Drop versions superseded before the kept history.
		i := 0
		if t.complete != None {
			cut := t.complete - t.keep.Milliseconds()
			for i+1 < len(vs) && vs[i+1].AsOf.UnixMilli() <= cut {
				i++
			}
		}
		vs = append(vs[i:], e)
		t.versions[e.Entity] = vs
	case event.EntryComplete:
		if e.Partitions != t.parts {
			t.parts = e.Partitions
			for p := range t.marks {
				if p >= t.parts {
					delete(t.marks, p)
				}
			}
		}
		if old, ok := t.marks[e.Partition]; !ok || at > old {
			t.marks[e.Partition] = at
		}
		c := int64(None)
		if int32(len(t.marks)) == t.parts && t.parts > 0 {
			c = at
			for _, m := range t.marks {
				c = min(c, m)
			}
		}
		if c > t.complete {
			t.complete = c
			close(t.advanced)
			t.advanced = make(chan struct{})
		}
	}
}

// Complete is the time through which the table is complete: every entry
// with an as-of time at or before it has been applied.
func (t *Table) Complete() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.complete
}

// Wait waits until the table is complete through at, ctx ends or timeout
// passes, and tells whether it is.
func (t *Table) Wait(ctx context.Context, at int64, timeout time.Duration) bool {
	var deadline <-chan time.Time
	for {
		t.mu.RLock()
		ok, ch := t.complete >= at, t.advanced
		t.mu.RUnlock()
		if ok {
			return true
		}
		if deadline == nil {
			if timeout <= 0 {
				return false
			}
			tm := time.NewTimer(timeout)
			defer tm.Stop()
			deadline = tm.C
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// Lookup returns the entry of entity in force at time at, if the entity
// was notable then.
func (t *Table) Lookup(entity string, at int64) (event.EntityEntry, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	vs := t.versions[entity]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].AsOf.UnixMilli() <= at {
			return vs[i], vs[i].Notable
		}
	}
	return event.EntityEntry{}, false
}
