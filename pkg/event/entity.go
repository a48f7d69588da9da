package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Schemas of the entity stage (docs/design/entities.md).
const (
	SchemaEntityEvent = "fraudstream.entity-event.v1"
	SchemaEntityEntry = "fraudstream.entity-entry.v1"
)

// Entity keys: an entity beyond the card is named by a one-letter kind and
// its id, and that name is the key of its entity-events and
// entity-features records.
const (
	EntityMerchant = "m:"
	EntityDevice   = "d:"
	EntityIP       = "i:"
)

// Kinds of EntityEvent.
const (
	// EntityVisit: card CardID paid at (or from) Entity at Time.
	EntityVisit = "visit"
	// EntityFlag: card CardID was declined at Time, and it had visited
	// the merchant Entity within the look-back before.
	EntityFlag = "flag"
	// EntityProgress: scorer partition Source (of Sources) will write no
	// more visit or flag events at or before Time. Written to every
	// entity-events partition, keyed by ProgressKey.
	EntityProgress = "progress"
)

// Kinds of EntityEntry.
const (
	// EntryEntity is the state of Entity from AsOf on until its next entry.
	EntryEntity = "entity"
	// EntryComplete says entity-events partition Partition (of Partitions)
	// has written every entry with an as-of time at or before AsOf.
	EntryComplete = "complete"
)

// EntityEvent is a record of the entity-events repartition topic, keyed by
// Entity (or ProgressKey for a progress event). Times are milliseconds.
type EntityEvent struct {
	Schema      string    `json:"schema"`
	Kind        string    `json:"kind"`
	Entity      string    `json:"entity,omitempty"`
	CardID      string    `json:"card_id,omitempty"`
	AmountCents int64     `json:"amount_cents,omitempty"`
	Time        time.Time `json:"time"`
	Source      int32     `json:"source,omitempty"`
	Sources     int32     `json:"sources,omitempty"`
}

// ProgressKey is the key of scorer partition p's progress events.
func ProgressKey(p int32) string { return fmt.Sprintf("\x00progress/%d", p) }

// Encode returns the JSON form of e with its schema set.
func (e EntityEvent) Encode() ([]byte, error) {
	e.Schema = SchemaEntityEvent
	return json.Marshal(e)
}

// DecodeEntityEvent decodes and validates an entity-events record value,
// ignoring unknown fields.
func DecodeEntityEvent(b []byte) (EntityEvent, error) {
	var e EntityEvent
	if err := decodeCompat(b, &e); err != nil {
		return EntityEvent{}, err
	}
	return e, e.Validate()
}

// Validate checks the fields the kind needs.
func (e *EntityEvent) Validate() error {
	ve := &ValidationError{}
	checkSchema(ve, e.Schema, SchemaEntityEvent)
	if e.Time.IsZero() {
		ve.add("/time", "required")
	}
	switch e.Kind {
	case EntityVisit, EntityFlag:
		if !validEntity(e.Entity) {
			ve.add("/entity", "must be m:, d: or i: followed by an id, got %q", e.Entity)
		}
		if e.CardID == "" {
			ve.add("/card_id", "required")
		}
	case EntityProgress:
		if e.Sources <= 0 || e.Source < 0 || e.Source >= e.Sources {
			ve.add("/source", "must be a partition number below sources (%d), got %d", e.Sources, e.Source)
		}
	default:
		ve.add("/kind", "must be visit, flag or progress, got %q", e.Kind)
	}
	return ve.err()
}

func validEntity(s string) bool {
	for _, p := range []string{EntityMerchant, EntityDevice, EntityIP} {
		if id, ok := strings.CutPrefix(s, p); ok && id != "" {
			return true
		}
	}
	return false
}

// EntityEntry is a record of the entity-features table topic: the state of
// one notable entity from AsOf on, or a completeness marker. Keys: the
// entity, or CompleteKey(partition) for a marker.
type EntityEntry struct {
	Schema string    `json:"schema"`
	Kind   string    `json:"kind"`
	Entity string    `json:"entity,omitempty"`
	AsOf   time.Time `json:"as_of"`
	// Notable is false in the entry that ends an entity's notable spell
	// (a tombstone that keeps its as-of time).
	Notable bool `json:"notable,omitempty"`
	// Distinct cards seen at the entity in the look-back horizons.
	Cards1h  int64 `json:"cards_1h,omitempty"`
	Cards24h int64 `json:"cards_24h,omitempty"`
	// Merchants: distinct visitors over the compromise horizon, and how
	// many of them were flagged in it.
	Visitors int64 `json:"visitors,omitempty"`
	Flagged  int64 `json:"flagged,omitempty"`
	// Compromised: a merchant whose flagged visitors passed the thresholds.
	Compromised bool  `json:"compromised,omitempty"`
	Partition   int32 `json:"partition,omitempty"`
	Partitions  int32 `json:"partitions,omitempty"`
}

// CompleteKey is the key of entity-events partition p's markers.
func CompleteKey(p int32) string { return fmt.Sprintf("\x00complete/%d", p) }

// Encode returns the JSON form of e with its schema set.
func (e EntityEntry) Encode() ([]byte, error) {
	e.Schema = SchemaEntityEntry
	return json.Marshal(e)
}

// DecodeEntityEntry decodes and validates an entity-features record value,
// ignoring unknown fields.
func DecodeEntityEntry(b []byte) (EntityEntry, error) {
	var e EntityEntry
	if err := decodeCompat(b, &e); err != nil {
		return EntityEntry{}, err
	}
	return e, e.Validate()
}

// Validate checks the fields the kind needs.
func (e *EntityEntry) Validate() error {
	ve := &ValidationError{}
	checkSchema(ve, e.Schema, SchemaEntityEntry)
	if e.AsOf.IsZero() {
		ve.add("/as_of", "required")
	}
	switch e.Kind {
	case EntryEntity:
		if !validEntity(e.Entity) {
			ve.add("/entity", "must be m:, d: or i: followed by an id, got %q", e.Entity)
		}
	case EntryComplete:
		if e.Partitions <= 0 || e.Partition < 0 || e.Partition >= e.Partitions {
			ve.add("/partition", "must be a partition number below partitions (%d), got %d", e.Partitions, e.Partition)
		}
	default:
		ve.add("/kind", "must be entity or complete, got %q", e.Kind)
	}
	return ve.err()
}
