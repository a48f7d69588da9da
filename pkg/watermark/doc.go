// Package watermark tracks event-time progress: how far a stream has got in
// the time at which things happened, as opposed to the time at which they
// are processed.
//
// # Event time and watermarks
//
// Card transactions reach the scorer out of order: a terminal buffers, a
// network retries, a partition lags. A watermark W is a promise: "no more
// events with event time ≤ W are expected". Once the watermark passes the end
// of a one-minute window, the window can be computed and published.
//
// # Bounded out-of-orderness
//
// A [Generator] makes the watermark of one input (one Kafka partition) from
// the largest event time seen so far: W = max_event_time_seen − max_delay.
// An input whose events are never more than max_delay out of order never
// produces an event at or below its own watermark.
//
// # Many inputs, idleness
//
// A task reading several partitions must not run ahead of the slowest one, so
// a [Combiner] takes the minimum watermark over its inputs. A partition with
// no traffic would hold everything back forever; after [WithIdleTimeout] of
// processing time without data it stops counting, and it rejoins when data
// arrives. The combined watermark never moves backwards, even when an idle
// input rejoins with older data: its older events are then simply late.
//
// # Lateness
//
// [Classify] puts an event with event time t in one of three classes against
// a watermark W and an allowed lateness L:
//
//	on time   t > W          windows containing t have not fired yet
//	late      W−L < t ≤ W    state is updated, fired windows fire again
//	too late  t ≤ W−L        state may be gone; the event is not added
//
// # Units
//
// Instants are int64 milliseconds since the Unix epoch; [None] is the
// watermark before any data. Lengths are [time.Duration], truncated to whole
// milliseconds. Nothing here reads a clock or starts a goroutine: the caller
// drives the types from its poll loop and passes processing time in, so that
// replays are deterministic.
//
// # Example
//
//	c := watermark.NewCombiner(
//		watermark.WithMaxDelay(5*time.Second),
//		watermark.WithIdleTimeout(30*time.Second),
//	)
//	for _, r := range fetches { // the scorer's poll loop
//		wm := c.Observe(int(r.Partition), r.EventTimeMs, nowMs)
//		switch watermark.Classify(r.EventTimeMs, wm, time.Minute) {
//		case watermark.OnTime, watermark.Late:
//			// update state
//		case watermark.TooLate:
//			// score with what is left, count it, do not update state
//		}
//	}
package watermark
