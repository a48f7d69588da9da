// Package event defines the records that flow between fraudstream's services:
// transactions, scored transactions, event-time statistics and rule sets.
//
// Every record is one JSON object with a "schema" field naming its type and
// version. This package is the only code the services share: each type has
// Decode functions and a Validate method that
// reports every problem with a JSON pointer to the offending field, so ingest
// can answer with field-level errors and the scorer can dead-letter exactly
// what ingest would have refused.
//
// Decoding: keys are exact-case and a duplicate key is refused, everywhere.
// What a client sends (the HTTP APIs) is decoded strictly: an unknown field
// is an error. What a service reads from a topic or a store it shares is
// decoded forward-compatibly: unknown fields, which a newer release may
// have added, are ignored (see Unknown).
//
// Encoding is deterministic: the same value always encodes to the same bytes,
// which the scorer relies on to replay a batch byte for byte after a crash.
// For that reason a scored record carries no wall-clock time of its own; the
// scorer puts its processing time in the [HeaderScoredAt] record header.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// Schema names, one per record type. The suffix is the format version.
const (
	SchemaTransaction = "fraudstream.transaction.v1"
	SchemaScored      = "fraudstream.scored.v1"
	SchemaStats       = "fraudstream.stats.v1"
	SchemaRules       = "fraudstream.rules.v1"
)

// Kafka record headers set by the services.
const (
	// HeaderScoredAt carries the RFC 3339 (nanosecond) wall-clock time at
	// which the scorer produced a scored record. It is a header, not part of
	// the value, so that replays produce byte-identical values.
	HeaderScoredAt = "fraudstream-scored-at"
	// HeaderError carries the reason a record was dead-lettered.
	HeaderError = "fraudstream-error"
	// HeaderSourceTopic, HeaderSourcePartition and HeaderSourceOffset
	// locate the record a dead letter was made from (partition and offset
	// in decimal), so that a dead letter written twice, which an
	// at-least-once writer may do, is recognisable as one.
	HeaderSourceTopic     = "fraudstream-source-topic"
	HeaderSourcePartition = "fraudstream-source-partition"
	HeaderSourceOffset    = "fraudstream-source-offset"
)

// Topic names of the pipeline.
const (
	TopicRaw    = "raw-transactions"
	TopicScored = "scored-transactions"
	TopicStats  = "fraud-stats"
	TopicState  = "scorer-state"
	TopicDLQ    = "raw-transactions.dlq"
	TopicRules  = "fraud-rules"
	// TopicScoredDLQ holds the scored-transactions records the alerts
	// sink cannot store, on the partition number they were read from.
	TopicScoredDLQ = "scored-transactions.dlq"
	// The entity stage (docs/design/entities.md): the repartition topic
	// keyed by entity, the aggregator's changelog co-partitioned with it,
	// and the broadcast table every scorer reads (one partition).
	TopicEntityEvents   = "entity-events"
	TopicEntityState    = "entity-state"
	TopicEntityFeatures = "entity-features"
	// TopicEntityEventsDLQ holds the entity-events records the aggregator
	// cannot use, on the partition number they were read from.
	TopicEntityEventsDLQ = "entity-events.dlq"
)

// Topics lists every topic of the pipeline. All but fraud-rules and
// entity-features have the partition count of raw-transactions;
// fraud-rules and entity-features have one partition.
var Topics = []string{TopicRaw, TopicScored, TopicStats, TopicState, TopicDLQ, TopicScoredDLQ, TopicRules,
	TopicEntityEvents, TopicEntityState, TopicEntityFeatures, TopicEntityEventsDLQ}

// Broadcast reports whether topic is read whole by every instance, and so
// has one partition: fraud-rules and entity-features.
func Broadcast(topic string) bool { return topic == TopicRules || topic == TopicEntityFeatures }

// Compacted reports whether topic keeps the latest value per key
// (cleanup.policy=compact): the changelogs and the broadcast tables.
func Compacted(topic string) bool {
	return topic == TopicState || topic == TopicEntityState || Broadcast(topic)
}

// Limits of the wire format.
const (
	MaxIDLen       = 64
	MaxAmountMinor = 1_000_000_000_000 // 10^12 minor units keeps any sum far from overflow
	MaxRecordBytes = 64 << 10          // upper bound on one encoded transaction
)

// ErrMalformed reports input that is not a single well-formed JSON object.
var ErrMalformed = errors.New("malformed JSON")

// FieldError is one problem with one field, located by a JSON pointer
// (RFC 6901) such as "/amount_minor" or "/rules/2/weight".
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// ValidationError lists every problem found in a record. Its fields map
// directly onto the "errors" extension of an RFC 9457 problem document.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Pointer + ": " + fe.Detail
	}
	return "invalid record: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(pointer, format string, args ...any) {
	e.Errors = append(e.Errors, FieldError{Pointer: pointer, Detail: fmt.Sprintf(format, args...)})
}

// err returns e as an error, nil if it holds none. It returns a copy, so
// that the ValidationError a Validate method collects into does not escape
// and a valid record costs no allocation.
func (e *ValidationError) err() error {
	if len(e.Errors) == 0 {
		return nil
	}
	return &ValidationError{Errors: e.Errors}
}

// decodeCompat decodes exactly one JSON object into v, a record written by
// another service: keys are exact-case, duplicates are refused and unknown
// keys are ignored (see IgnoreUnknown).
func decodeCompat(b []byte, v any) error {
	return decodeKeysChecked(b, v, reflect.TypeOf(v).Elem(), IgnoreUnknown)
}

// decodeJSON decodes b with encoding/json once a keyChecker has passed it.
func decodeJSON(b []byte, v any, unknown Unknown) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if unknown == RejectUnknown {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		ve := &ValidationError{}
		ve.add(pointerOf(typeErr.Field), "must be %s, got JSON %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		return ve
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		ve := &ValidationError{}
		ve.add(pointerOf(strings.Trim(field, `"`)), "unknown field")
		return ve
	}
	var timeErr *time.ParseError
	// A time given as a JSON number or object fails in Time.UnmarshalJSON
	// with a plain error, not a *time.ParseError; it is a wrong type all
	// the same.
	if errors.As(err, &timeErr) || strings.HasPrefix(err.Error(), "Time.UnmarshalJSON:") {
		// encoding/json does not say which field held the bad time; every
		// time field we decode from clients is an event time.
		ve := &ValidationError{}
		ve.add("/event_time", "must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z")
		return ve
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: empty body", ErrMalformed)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

func pointerOf(field string) string {
	if field == "" {
		return ""
	}
	return "/" + strings.ReplaceAll(field, ".", "/")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int32", "int64", "uint", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a " + goKind
}

func checkSchema(ve *ValidationError, got, want string) {
	if got != "" && got != want {
		ve.add("/schema", "must be %q or absent, got %q", want, got)
	}
}
