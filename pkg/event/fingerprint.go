package event

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// A transaction_id names one transaction in the whole pipeline, and a
// fingerprint tells whether two records with the same id carry the same
// transaction: a redelivery (dropped once) or a different transaction
// reusing the id (refused by ingest, dead-lettered by the scorer). See
// docs/design/transaction-ids.md.

// AppendCanonical appends t's canonical encoding: Encode's bytes with
// ingest_time left out. Every sending of one transaction has the same
// canonical encoding, whatever the whitespace or field order of its JSON and
// whenever ingest stamped it; ingest's idempotency fingerprint is the
// SHA-256 of these bytes.
func (t Transaction) AppendCanonical(b []byte) ([]byte, error) {
	t.IngestTime = time.Time{}
	return t.AppendEncode(b)
}

// Fingerprint returns the content fingerprint of a transaction from its
// canonical encoding (AppendCanonical): the first 8 bytes of its SHA-256,
// big-endian. It is never 0, so 0 can stand for "not known".
func Fingerprint(canonical []byte) uint64 {
	sum := sha256.Sum256(canonical)
	return FingerprintOfSum(sum)
}

// FingerprintOfSum is Fingerprint for a caller that already holds the
// SHA-256 of the canonical encoding.
func FingerprintOfSum(sum [sha256.Size]byte) uint64 {
	fp := binary.BigEndian.Uint64(sum[:8])
	if fp == 0 {
		fp = 1 // 0 means unknown; one fingerprint in 2^64 moves
	}
	return fp
}
