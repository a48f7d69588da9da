package scorer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Quarantine: a partition whose state cannot be restored (a changelog
// entry that does not decode: errStateFormat) would fail every session,
// and with it every other partition of the instance. Instead it is set
// aside alone: its fetching is paused, the open transaction aborted so the
// session rewinds every partition to its committed offset (the quarantined
// one's records polled with the batch must not be committed), and the
// others go on. Its committed offset stays where its last processed record
// left it. It is retried when it is next assigned (a rebalance, a restart);
// until an operator repairs its changelog, the retry quarantines it again.
// Transient restore failures (broker unreachable, a stalled read) still
// restart the session, as a new one can fix them.

// errQuarantined is returned by prepare when it quarantined a partition.
var errQuarantined = errors.New("partition quarantined")

// quarantine sets partition p aside for err, if err is one that no retry
// can fix, and reports whether it did.
func (s *Service) quarantine(p int32, err error) bool {
	if !errors.Is(err, errStateFormat) {
		return false
	}
	s.mu.Lock()
	if s.quarantined == nil {
		s.quarantined = make(map[int32]string)
	}
	s.quarantined[p] = err.Error()
	n := len(s.quarantined)
	s.mu.Unlock()
	s.m.quarantined.Set(float64(n))
	s.log.Error("partition quarantined: its state cannot be restored; the other partitions go on, it is retried when next assigned",
		"partition", p, "err", err,
		"repair", fmt.Sprintf("tombstone or rewrite the named key in %s partition %d", event.TopicState, p))
	return true
}

// isQuarantined reports whether partition p is set aside.
func (s *Service) isQuarantined(p int32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.quarantined[p]
	return ok
}

// pauseQuarantined stops cl from fetching the quarantined partitions. The
// pause lasts until release or the end of the client.
func (s *Service) pauseQuarantined(cl *kgo.Client) {
	s.mu.Lock()
	ps := slices.Collect(maps.Keys(s.quarantined))
	s.mu.Unlock()
	cl.PauseFetchPartitions(map[string][]int32{event.TopicRaw: ps})
}

// release forgets the quarantine of partitions that left this instance
// and resumes fetching them, so their next assignment tries again. The
// caller holds s.mu.
func (s *Service) release(cl *kgo.Client, partitions []int32) {
	var resume []int32
	for _, p := range partitions {
		if _, ok := s.quarantined[p]; ok {
			delete(s.quarantined, p)
			resume = append(resume, p)
		}
	}
	if len(resume) == 0 {
		return
	}
	s.m.quarantined.Set(float64(len(s.quarantined)))
	if cl != nil {
		cl.ResumeFetchPartitions(map[string][]int32{event.TopicRaw: resume})
	}
	s.log.Info("quarantine lifted: partitions left this instance", "partitions", resume)
}

// quarantineStatus describes the quarantined partitions for /readyz, and
// reports whether every assigned partition is quarantined (then the
// instance does no work and is not ready). The caller holds s.mu.
func (s *Service) quarantineStatus() (detail string, all bool) {
	if len(s.quarantined) == 0 {
		return "", false
	}
	ps := slices.Sorted(maps.Keys(s.quarantined))
	var b strings.Builder
	b.WriteString("quarantined partitions:")
	for _, p := range ps {
		fmt.Fprintf(&b, " %d (%s);", p, s.quarantined[p])
	}
	all = len(s.tasks) > 0
	for p := range s.tasks {
		if _, ok := s.quarantined[p]; !ok {
			all = false
		}
	}
	return strings.TrimSuffix(b.String(), ";"), all
}

// rewind aborts the open transaction, beginning one first when b is nil,
// so the session rewinds every partition to its committed offset, and
// resets the tasks to match (they restore again before their next
// record). It is how a batch ends when a partition was quarantined in it.
func (s *Service) rewind(ctx context.Context, sess *kgo.GroupTransactSession, b *batch) error {
	if b == nil {
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		b = newBatch(ctx, sess)
	}
	b.finish(false)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.TransactionTimeout)
	defer cancel()
	s.m.aborted()
	_, err := sess.End(actx, kgo.TryAbort)
	s.resetTasks()
	if err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	return nil
}
