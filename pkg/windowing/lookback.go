package windowing

import (
	"errors"
	"fmt"
	"time"
)

// The look-back's files, by concern:
//
//	lookback.go  this file: the public types, options and configuration
//	series.go    Series: records, Add, Evict, Reset and lazy compaction
//	query.go     Query: the in-order fast path and the bucket path
//	distinct.go  the per-key dictionaries of distinct values and their index
//	buckets.go   bucket levels (the out-of-order query path)
//	stack.go     monotonic stacks of suffix minima (min and max)
//	search.go    the one galloping search all the sorted structures use
//	hash.go      Hash (FNV-1a) and the dictionary index's hash
//	encoding.go  the versioned binary encoding of a Series

const (
	// MaxDistinctDims is the most distinct-count dimensions a Lookback can
	// have (the length of Record.Distinct); WithDistinctDims chooses how
	// many it has.
	MaxDistinctDims = 4
	// MaxFlags is the most flag bits a Lookback can count (the flag counts
	// are packed in four 16-bit lanes); WithFlags chooses how many.
	MaxFlags = 4
	// DistinctCap is how many different values per dimension one key can
	// hold at once. Beyond it, new values are not tracked: queries that
	// cover them report Saturated and a Distinct that is a lower bound.
	DistinctCap = 64

	// MinTime and MaxTime bound the event times a Series accepts (about
	// ±146 million years in milliseconds), so bucket arithmetic cannot overflow.
	MinTime int64 = -1 << 62
	MaxTime int64 = 1 << 62
)

var (
	// ErrTooLate is returned by Series.Add for a record at or below the
	// eviction cutoff: state it would belong to may already be gone.
	ErrTooLate = errors.New("windowing: record too late")
	// ErrTimeRange is returned for an event time outside [MinTime, MaxTime].
	ErrTimeRange = errors.New("windowing: event time out of range")
	// ErrHorizons is returned by Query for horizons that are not positive and
	// ascending, or an out slice shorter than the horizons.
	ErrHorizons = errors.New("windowing: horizons must be positive and ascending, out as long as horizons")
	// ErrConfig is returned by constructors for invalid options.
	ErrConfig = errors.New("windowing: invalid configuration")
	// ErrFormat is returned by UnmarshalBinary for bytes it cannot decode.
	ErrFormat = errors.New("windowing: bad encoding")
	// ErrDimension is returned by Series.Add for a record with a distinct
	// value in a dimension the Lookback does not have (see
	// WithDistinctDims): it would not be counted.
	ErrDimension = errors.New("windowing: distinct value in a dimension the look-back does not have")
)

// Record is one event of a key as the look-back sees it.
type Record struct {
	Time  int64 // event time, Unix milliseconds
	Value int64 // summed; min and max are kept (e.g. amount in minor units)
	// Flags bit i (i < the Lookback's flag count, see WithFlags) counts the
	// record in Agg.Flagged[i]; higher bits are ignored.
	Flags uint8
	// Distinct holds one value per dimension to count distinct values of,
	// typically a hash (see Hash). 0 means "no value" and is not counted.
	// Dimensions beyond the Lookback's (see WithDistinctDims) must be 0.
	Distinct [MaxDistinctDims]uint64
}

// Agg is the aggregate of a key's records over one horizon (t−d, t].
// Entries for flags and dimensions the Lookback does not have are 0.
type Agg struct {
	Count    int64
	Sum      int64
	Min, Max int64 // 0 when Count is 0
	Flagged  [MaxFlags]int64
	// Distinct is the number of different non-zero values per dimension.
	Distinct [MaxDistinctDims]int
	// Saturated says that records in the horizon carried values the key
	// could not track (more than DistinctCap live at once); Distinct is then
	// a lower bound.
	Saturated [MaxDistinctDims]bool
}

// LookbackOption configures a Lookback.
type LookbackOption func(*Lookback)

// WithRetention sets the longest horizon that queries need. Records older
// than watermark − allowed lateness − retention are evicted.
//
// Default: 24h.
func WithRetention(d time.Duration) LookbackOption {
	return func(l *Lookback) { l.retention = millis(d) }
}

// WithLookbackLateness sets the allowed lateness of the stream, so that a
// late record's queries still see everything they need.
//
// Default: 0.
func WithLookbackLateness(d time.Duration) LookbackOption {
	return func(l *Lookback) { l.lateness = millis(d) }
}

// WithLevels sets the bucket widths, finest first; each must be a multiple
// of the one before. A query at a time before the newest record walks the
// coarsest buckets that fit inside its horizon, finer ones near the edges,
// and single records in the finest edge buckets, so results are exact at
// millisecond resolution. (Queries at or after the newest record do not use
// buckets.)
//
// Default: 1m, 10m, 1h.
func WithLevels(widths ...time.Duration) LookbackOption {
	return func(l *Lookback) {
		l.widths = l.widths[:0]
		for _, w := range widths {
			l.widths = append(l.widths, millis(w))
		}
	}
}

// WithDistinctDims sets how many distinct-count dimensions the records
// carry, 0 to MaxDistinctDims: Record.Distinct[:n] are counted. Each
// dimension costs per-key memory and work on every Add and Query, and it is
// part of the encoding: a Series decodes only with the number it was
// encoded with.
//
// Default: MaxDistinctDims.
func WithDistinctDims(n int) LookbackOption {
	return func(l *Lookback) { l.dims = n }
}

// WithFlags sets how many flag bits of Record.Flags are counted, 0 to
// MaxFlags; higher bits are ignored. An encoded Series with a higher flag
// bit set does not decode.
//
// Default: MaxFlags.
func WithFlags(n int) LookbackOption {
	return func(l *Lookback) { l.flags = n }
}

// Lookback is the configuration shared by the per-key Series of one
// look-back aggregate. It is immutable and safe for concurrent use.
type Lookback struct {
	retention int64
	lateness  int64
	widths    []int64
	dims      int // distinct dimensions, ≤ MaxDistinctDims
	flags     int // counted flag bits, ≤ MaxFlags
	flagMask  uint8
}

// NewLookback validates the options and returns the shared configuration.
func NewLookback(opts ...LookbackOption) (*Lookback, error) {
	l := &Lookback{retention: millis(24 * time.Hour), widths: []int64{60_000, 600_000, 3_600_000},
		dims: MaxDistinctDims, flags: MaxFlags}
	for _, o := range opts {
		o(l)
	}
	if l.retention <= 0 || l.lateness < 0 || l.retention > 1<<50 || l.lateness > 1<<50 || len(l.widths) == 0 || len(l.widths) > 8 {
		return nil, fmt.Errorf("%w: retention %dms, lateness %dms, %d levels", ErrConfig, l.retention, l.lateness, len(l.widths))
	}
	for i, w := range l.widths {
		if w <= 0 || w > 1<<40 || i > 0 && w%l.widths[i-1] != 0 {
			return nil, fmt.Errorf("%w: level widths %v ms must be positive multiples of each other", ErrConfig, l.widths)
		}
	}
	if l.dims < 0 || l.dims > MaxDistinctDims || l.flags < 0 || l.flags > MaxFlags {
		return nil, fmt.Errorf("%w: %d distinct dimensions (at most %d), %d flags (at most %d)",
			ErrConfig, l.dims, MaxDistinctDims, l.flags, MaxFlags)
	}
	l.flagMask = 1<<l.flags - 1
	return l, nil
}

// NewSeries returns the empty state of one key.
func (l *Lookback) NewSeries() *Series {
	s := &Series{lb: l, cutoff: MinTime - 1, dims: make([]dim, l.dims)}
	for d := range s.dims {
		s.dims[d].lastOver = MinTime - 1
	}
	return s
}

func millis(d time.Duration) int64 { return int64(d / time.Millisecond) }
