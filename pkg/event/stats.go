package event

import (
	"fmt"
	"time"
)

// Stats summarises one event-time window of one input partition: the value
// of a fraud-stats record. A window is fired when the partition watermark
// passes its end, fired again (Final false, a higher Revision) for each batch
// of late records, and fired a last time with Final true when it is evicted.
type Stats struct {
	Schema      string    `json:"schema"`
	Partition   int32     `json:"partition"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Revision    int32     `json:"revision"`
	Final       bool      `json:"final"`
	Watermark   time.Time `json:"watermark,omitzero"`

	Count       int64 `json:"count"`
	Approved    int64 `json:"approved"`
	Review      int64 `json:"review"`
	Declined    int64 `json:"declined"`
	Late        int64 `json:"late"`
	TooLate     int64 `json:"too_late"`
	AmountMinor int64 `json:"amount_minor"`

	// End-to-end latency from ingest to scoring, in milliseconds.
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`
}

// Key is the record key of a stats record: partition and window start, so
// compaction keeps the latest revision of each window.
func (s Stats) Key() []byte {
	return fmt.Appendf(nil, "%d/%d", s.Partition, s.WindowStart.UnixMilli())
}

// Encode returns the JSON form of s with its schema set.
func (s Stats) Encode() ([]byte, error) {
	s.Schema = SchemaStats
	if b, ok := appendStats(make([]byte, 0, statsSizeBase+len(s.Schema)), &s); ok {
		return b, nil
	}
	return appendMarshal(nil, s)
}

// DecodeStats decodes and validates a fraud-stats record value. Unknown
// fields are ignored (IgnoreUnknown); keys are exact-case and duplicates
// are refused.
func DecodeStats(b []byte) (Stats, error) {
	var s Stats
	if err := decodeCompat(b, &s); err != nil {
		return Stats{}, err
	}
	return s, s.Validate()
}

// Validate checks the invariants every stats record keeps.
func (s *Stats) Validate() error {
	ve := &ValidationError{}
	checkSchema(ve, s.Schema, SchemaStats)
	if !s.WindowEnd.After(s.WindowStart) {
		ve.add("/window_end", "must be after window_start")
	}
	if s.Approved+s.Review+s.Declined != s.Count {
		ve.add("/count", "must equal approved + review + declined")
	}
	if s.Count < 0 || s.Late < 0 || s.TooLate < 0 || s.AmountMinor < 0 {
		ve.add("/count", "counts and amounts must not be negative")
	}
	return ve.err()
}
