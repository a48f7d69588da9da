package scorer

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/entity"
)

// BenchmarkTaskProcessEntities is BenchmarkTaskProcessDefault with the
// entity stage on: the join (device, IP, the card's merchants, against a
// table of 1,000 notable entities that is complete), the merchant memory,
// and the entity-events records (encoded at every 1,000th record, as at a
// batch end). The difference to BenchmarkTaskProcessDefault is the stage's
// per-transaction cost in the scorer.
func BenchmarkTaskProcessEntities(b *testing.B) {
	recs := make([]*kgo.Record, 100_000)
	for i := range recs {
		x := testTx(fmt.Sprintf("tx-%d", i), fmt.Sprintf("card-%d", i%500), time.Unix(0, t0+int64(i)*int64(10*time.Millisecond)).UTC())
		x.MerchantID = fmt.Sprintf("merchant-%d", i%997)
		x.DeviceID = fmt.Sprintf("device-%d", i%300)
		x.IP = fmt.Sprintf("10.0.%d.%d", i%7, i%250)
		recs[i] = txRecord(b, 0, int64(i), x)
	}
	tab := entity.NewTable(7 * 24 * time.Hour)
	at := time.Unix(0, t0).UTC()
	for i := range 1000 {
		e := event.EntityEntry{Kind: event.EntryEntity, AsOf: at, Notable: true, Cards24h: 5}
		switch i % 3 {
		case 0:
			e.Entity, e.Compromised = fmt.Sprintf("m:merchant-%d", i), true
		case 1:
			e.Entity = fmt.Sprintf("d:device-%d", i)
		default:
			e.Entity = fmt.Sprintf("i:10.0.%d.%d", i%7, i%250)
		}
		tab.Apply(e)
	}
	tab.Apply(event.EntityEntry{Kind: event.EntryComplete, AsOf: at.Add(1000 * time.Hour), Partitions: 1})
	params := func() *taskParams {
		p, err := newTaskParams(DefaultConfig(), Deps{}, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		p.entities = &entityParams{table: tab, lag: DefaultEntityLag, memory: DefaultEntityMemory, sources: 4, partitions: 4}
		return p
	}
	var tk *task
	c := newBatchCounts()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(recs) == 0 {
			b.StopTimer()
			tk = newTask(0, params())
			b.StartTimer()
		}
		if out := tk.process(recs[i%len(recs)], &c); len(out) != 1 {
			b.Fatal("no output")
		}
		if i%1000 == 999 {
			if _, err := tk.takeEntityRecords(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
