package scorer

import (
	"time"

	"github.com/fraudstream/fraudstream/pkg/watermark"
)

// Idle partitions: a partition's stats windows fire as its watermark
// passes them, and its watermark moves only with its records. A partition
// that stops receiving records would never report its last open windows,
// and a reader summing partitions would call a window final while missing
// that partition's records. So once a partition has had no record for
// Config.StatsIdleTimeout of processing time, every open window of it with
// records not yet reported is fired, not final, at its unchanged
// watermark, inside a normal Kafka transaction together with the windows'
// changelog entries. The windows stay open: when records come again they
// fire and finish as usual, with higher revisions.
//
// Only fraud-stats records depend on this processing time; scored records
// and card state never do (docs/design/event-time.md).

// idleTasks returns the restored tasks that have had no record for the
// idle timeout at now and hold windows with unreported records.
func (s *Service) idleTasks(now time.Time) []*task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*task
	for _, t := range s.tasks {
		if t.restored && !t.lastActive.IsZero() && now.Sub(t.lastActive) >= s.cfg.StatsIdleTimeout && t.stats.hasPending() {
			out = append(out, t)
		}
	}
	return out
}

// fireIdle produces, into b's transaction, the idle-fired windows of the
// idle tasks and their changelog entries. No worker may run: call it after
// b.finish.
func (s *Service) fireIdle(b *batch, now time.Time) {
	for _, t := range s.idleTasks(now) {
		wm := t.gen.Current()
		if wm == watermark.None {
			continue
		}
		t.stats.fireIdle(wm)
		for _, r := range t.stats.take() {
			b.counts.stats++
			b.sess.Produce(b.ctx, r, b.promise)
		}
		for _, r := range t.flush() {
			b.counts.changelog++
			b.sess.Produce(b.ctx, r, b.promise)
		}
	}
}

// idlePoll bounds a wait for records, so that idle partitions are looked
// at even when no partition has records.
func (s *Service) idlePoll() time.Duration {
	return max(s.cfg.StatsIdleTimeout/2, 5*time.Millisecond)
}
