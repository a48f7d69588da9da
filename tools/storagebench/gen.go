// Package storagebench produces real scored records for measuring the
// alerts store (docs/design/storage.md): the scorer's offline path over
// simulated traffic, written as NDJSON.
package storagebench

import (
	"bufio"
	"fmt"
	"io"
	"time"

	"github.com/fraudstream/fraudstream/services/scorer"
	"github.com/fraudstream/fraudstream/tools/traffic"
)

// Write writes n scored records, as the scorer produces them and the sink
// consumes them, one per line: simulated traffic of 20,000 cards each
// paying about once an hour from start, scored in topic order by the
// scorer's own code (scorer.Offline).
func Write(w io.Writer, n int, seed uint64, start time.Time) error {
	const chunk = 100_000
	g := traffic.New(traffic.Config{Seed: seed, Cards: 20000})
	rate := float64(len(g.CardIDs())) / 3600 // per second
	step := time.Duration(float64(time.Second) / rate)
	now := start
	o, err := scorer.NewOffline(scorer.Config{}, scorer.Deps{})
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	written := 0
	for written < n {
		for range chunk {
			now = now.Add(step)
			l := g.Next(now)
			s, ok, err := o.Score(l.Tx)
			if err != nil {
				return fmt.Errorf("score %s: %w", l.Tx.TransactionID, err)
			}
			if !ok {
				continue
			}
			b, err := s.Encode()
			if err != nil {
				return err
			}
			bw.Write(b)
			bw.WriteByte('\n')
			if written++; written == n {
				break
			}
		}
	}
	return bw.Flush()
}
