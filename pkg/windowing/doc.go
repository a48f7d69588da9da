// Package windowing groups a stream's records by event time: fixed and
// session windows that fire when the watermark passes them, and look-back
// aggregates ("how many transactions did this card make in the hour before
// this one?") that answer several horizons at once.
//
// All instants are int64 Unix milliseconds, all lengths time.Duration. Every
// type is a synchronous data structure: the caller's poll loop adds records
// and moves the watermark (see package watermark); nothing reads a clock or
// starts a goroutine, so a replay gives the same results byte for byte.
//
// # Windows, firing and lateness
//
// A window [Start, End) is complete once the watermark W reaches End−1: no
// more on-time records can belong to it. [Windows] (tumbling or sliding, by
// [Assigner]) and [Sessions] keep one accumulator per key and window, generic
// over an [Aggregator] (add, merge, result). Advance(W) emits:
//
//	Final   the first result, when W passes the end
//	Update  a corrected result, when records arrive late (t ≤ W) but within
//	        the allowed lateness L; it replaces the earlier one
//
// A window is evicted when W − L reaches its end; a record with t ≤ W − L is
// refused with [ErrTooLate], exactly the records that watermark.Classify
// calls too late. Sessions grow while records are less than the gap apart;
// a late record that bridges two sessions merges them, and the merged
// session's Update replaces both earlier results.
//
// # Look-back aggregates
//
// A [Series] holds one key's recent records for velocity features. Query(t,
// horizons, out) returns, for every horizon d, the count, sum, min, max,
// flagged counts and distinct counts of the records with event time in
// (t−d, t] — exactly, at millisecond resolution, even when records with
// later event times have already arrived. A query at or after the newest
// record (the usual case) reads prefix sums, monotonic min/max stacks and
// per-value last-use times; an earlier one merges time buckets (coarse in
// the middle of a horizon, finer ones and single records at its edges),
// which are built on demand. Evict(W) drops
// what no late-enough query can need (older than W − L − retention), so
// memory is bounded; Evict reports an empty series so the caller can delete
// the key. Series.MarshalBinary is a compact, versioned, deterministic
// encoding for a changelog.
//
// What a record carries besides its value is the caller's choice, made once
// on the [Lookback]: up to [MaxDistinctDims] dimensions to count distinct
// values of ([WithDistinctDims], e.g. merchant and country) and up to
// [MaxFlags] flag bits to count ([WithFlags], e.g. "small amount").
//
// # Example
//
//	const merchant, country = 0, 1
//	lb, _ := windowing.NewLookback(windowing.WithLookbackLateness(time.Minute),
//		windowing.WithDistinctDims(2), windowing.WithFlags(1))
//	s := lb.NewSeries() // one per card
//	horizons := []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 24 * time.Hour}
//	out := make([]windowing.Agg, len(horizons))
//	_ = s.Query(tx.EventTimeMs, horizons, out) // features before this transaction
//	_ = s.Add(windowing.Record{Time: tx.EventTimeMs, Value: tx.AmountMinor,
//		Distinct: [windowing.MaxDistinctDims]uint64{
//			merchant: windowing.Hash(tx.MerchantID), country: windowing.Hash(tx.Country)}})
//	if s.Evict(wm) { /* delete the card's state */ }
package windowing
