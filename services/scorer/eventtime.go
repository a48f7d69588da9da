package scorer

import (
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// stateTime is the time at which a record counts in its partition's
// watermark and in its card's state and features (docs/design/event-time.md):
// its event time, clamped
//   - from above to its ingest_time, when it has one: a client's clock
//     never runs the watermark ahead of the server's (wm ≤ max ingest_time
//     − max delay), so it cannot make another card's records late, and a
//     card cannot spread its own charges into the future;
//   - from below to the oldest time still open, watermark − allowed
//     lateness + 1 ms: a record dated further back still enters its
//     card's state, so no one escapes velocity by backdating.
//
// It depends only on the record and the watermark before it (state), so a
// replay computes the same value.
func (p *taskParams) stateTime(et int64, ingest time.Time, wm int64) int64 {
	if !ingest.IsZero() {
		et = min(et, ingest.UnixMilli())
	}
	if wm == watermark.None {
		return et
	}
	return max(et, watermark.Sub(wm, watermark.Millis(p.lateness))+1)
}
