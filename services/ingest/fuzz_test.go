package ingest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

func decodeSeeds() [][]byte {
	return [][]byte{
		txWith(nil),
		txWith(map[string]any{"lat": nil, "lon": nil, "ip": "2001:db8::1", "account_id": nil, "device_id": nil}),
		txWith(map[string]any{"amount_minor": 0, "currency": "eur"}),
		txWith(map[string]any{"event_time": 1}),
		txWith(map[string]any{"ingest_time": "2026-03-01T12:00:00Z"}),
		txWith(map[string]any{"schema": event.SchemaTransaction}),
		txWith(map[string]any{"extra": []int{1}}),
		[]byte(`{"transaction_id":`),
		[]byte(`[]`),
		[]byte(`null`),
		[]byte(`{"amount_minor":1e3}`),
		[]byte(`{"event_time":"2026-03-01T12:00:00+14:00"}`),
		[]byte("{\"transaction_id\":\"\\u0000\"}"),
		{},
	}
}

// FuzzDecodeTransaction: whatever the body, decoding answers 400 or 422
// with well-formed pointers, or yields a transaction that survives the
// trip through Kafka unchanged and still validates.
func FuzzDecodeTransaction(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, e := decodeTransaction(string(b), testNow, DefaultMaxSkew)
		if e != nil {
			switch e.Kind {
			case KindMalformed:
			case KindInvalid:
				if len(e.Fields) == 0 {
					t.Fatalf("422 without field errors: %v", e)
				}
				for _, fe := range e.Fields {
					if fe.Pointer != "" && !strings.HasPrefix(fe.Pointer, "/") || fe.Detail == "" {
						t.Fatalf("bad field error %+v", fe)
					}
				}
			default:
				t.Fatalf("decode answered %v", e)
			}
			return
		}
		tx.IngestTime = testNow
		v, err := tx.Encode()
		if err != nil {
			t.Fatalf("valid transaction does not encode: %v", err)
		}
		if len(v) > event.MaxRecordBytes {
			t.Fatalf("record of %d bytes from a %d-byte body", len(v), len(b))
		}
		back, err := event.DecodeTransaction(v)
		if err != nil {
			t.Fatalf("stored record does not decode: %v\n%s", err, v)
		}
		if err := back.Validate(time.Time{}, 0); err != nil {
			t.Fatalf("stored record does not validate for the scorer: %v\n%s", err, v)
		}
		tx.Schema = event.SchemaTransaction
		if !back.EventTime.Equal(tx.EventTime) || !back.IngestTime.Equal(tx.IngestTime) {
			t.Fatalf("times changed: %v %v → %v %v", tx.EventTime, tx.IngestTime, back.EventTime, back.IngestTime)
		}
		back.EventTime, back.IngestTime = tx.EventTime, tx.IngestTime
		if !reflect.DeepEqual(back, tx) {
			t.Fatalf("round trip changed the transaction\n got %+v\nwant %+v", back, tx)
		}
	})
}

// FuzzSplitBatch: splitting never yields more items than allowed nor an
// empty item, and fails only with 400, 413 or 422.
func FuzzSplitBatch(f *testing.F) {
	good := string(txWith(nil))
	for _, s := range []string{
		good + "\n" + good,
		"[" + good + "," + good + "]",
		"\n\r\n",
		"[",
		"[1,{},\"x\"] ",
		"{}",
		"[" + good + "] []",
	} {
		f.Add(true, []byte(s))
		f.Add(false, []byte(s))
	}
	const maxItems = 4
	f.Fuzz(func(t *testing.T, ndjson bool, body []byte) {
		mt := mediaJSON
		if ndjson {
			mt = mediaNDJSON
		}
		items, e := splitBatch(mt, string(body), maxItems)
		if e != nil {
			switch e.Kind {
			case KindMalformed, KindTooLarge, KindInvalid:
			default:
				t.Fatalf("split answered %v", e)
			}
			return
		}
		if len(items) == 0 || len(items) > maxItems {
			t.Fatalf("%d items", len(items))
		}
		for i, it := range items {
			if len(it) == 0 {
				t.Fatalf("item %d is empty", i)
			}
			if !ndjson && !json.Valid([]byte(it)) {
				t.Fatalf("item %d of a JSON array is not one JSON value: %q", i, it)
			}
		}
	})
}
