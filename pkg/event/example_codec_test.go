package event_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// AppendJSON writes the same bytes as json.Marshal, into a buffer the
// caller can reuse; Encode is AppendJSON with the schema set.
func ExampleTransaction_AppendJSON() {
	tx := event.Transaction{
		TransactionID: "tx-1", CardID: "card-42", AmountMinor: 1299, Currency: "EUR",
		MerchantID: "m-9", MerchantCategory: "5411", MerchantCountry: "DE",
		Channel: event.ChannelEcommerce, EventTime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	buf := make([]byte, 0, 512)
	buf, err := tx.AppendJSON(buf[:0])
	if err != nil {
		panic(err)
	}
	fmt.Println(string(buf))

	back, err := event.DecodeTransaction(buf)
	fmt.Println(back.AmountMinor, back.EventTime, err)
	// Output:
	// {"transaction_id":"tx-1","card_id":"card-42","amount_minor":1299,"currency":"EUR","merchant_id":"m-9","merchant_category":"5411","merchant_country":"DE","channel":"ecommerce","event_time":"2026-03-01T12:00:00Z"}
	// 1299 2026-03-01 12:00:00 +0000 UTC <nil>
}

// DecodeTransactionString decodes without copying: the fields of each
// transaction are substrings of the input, so many transactions read from
// one request body share that body's single allocation.
func ExampleDecodeTransactionString() {
	body := `{"transaction_id":"tx-1","card_id":"card-42","amount_minor":1299,"currency":"EUR","merchant_id":"m-9","merchant_category":"5411","merchant_country":"DE","channel":"ecommerce","event_time":"2026-03-01T12:00:00Z"}
{"transaction_id":"tx-2","card_id":"card-7","amount_minor":500,"currency":"USD","merchant_id":"m-1","merchant_category":"5814","merchant_country":"US","channel":"card_present","event_time":"2026-03-01T12:00:01Z"}`
	for line := range strings.Lines(body) {
		tx, err := event.DecodeTransactionString(strings.TrimSpace(line))
		if err != nil {
			panic(err)
		}
		fmt.Println(tx.TransactionID, tx.CardID, tx.AmountMinor, tx.Currency)
	}
	// Output:
	// tx-1 card-42 1299 EUR
	// tx-2 card-7 500 USD
}

// Two sendings of one transaction share a fingerprint whenever ingest
// stamped them; a transaction reusing the id with other contents does not.
func ExampleFingerprint() {
	tx := event.Transaction{
		TransactionID: "tx-1", CardID: "card-42", AmountMinor: 1299, Currency: "EUR",
		MerchantID: "m-9", MerchantCategory: "5411", MerchantCountry: "DE",
		Channel: event.ChannelEcommerce, EventTime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	fp := func(tx event.Transaction) uint64 {
		c, err := tx.AppendCanonical(nil)
		if err != nil {
			panic(err)
		}
		return event.Fingerprint(c)
	}
	first := fp(tx)
	tx.IngestTime = time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC) // stamped by ingest
	redelivered := fp(tx)
	tx.AmountMinor = 99_999
	other := fp(tx)
	fmt.Println(first == redelivered, first == other)
	// Output:
	// true false
}

// Broadcast and Compacted say how a topic is laid out: fraud-rules is
// one compacted partition every scorer reads whole.
func ExampleBroadcast() {
	fmt.Println(event.Broadcast(event.TopicRules), event.Compacted(event.TopicRules))
	fmt.Println(event.Broadcast(event.TopicState), event.Compacted(event.TopicState))
	fmt.Println(event.Broadcast(event.TopicRaw), event.Compacted(event.TopicRaw))
	// Output:
	// true true
	// false true
	// false false
}
