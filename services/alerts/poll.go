package alerts

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
)

// follow hands every record cl fetches to each, in order per partition,
// until ctx is done (nil) or the client is closed (an error). Fetch errors
// are logged under name and polling goes on: franz-go retries them.
func follow(ctx context.Context, cl *kgo.Client, log *slog.Logger, name string, each func(*kgo.Record)) error {
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return fmt.Errorf("%s: kafka client closed", name)
		}
		fetches.EachError(func(topic string, p int32, err error) {
			log.Warn(name+": fetch", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachRecord(each)
	}
}
