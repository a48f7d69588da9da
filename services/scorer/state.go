package scorer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/fraudstream/fraudstream/pkg/windowing"
)

// The scorer-state changelog holds, per input partition p, in scorer-state
// partition p: one entry per card keyed by card_id (a tombstone once the
// card's state has expired), and one partition metadata entry under
// metaKey. Every value starts with a format version byte.
const (
	cardStateVersion = 4
	metaVersion      = 1
)

// metaKey is the changelog key of the partition's metadata. A card_id
// cannot contain a NUL byte (pkg/event validates its charset), so the key
// never collides with a card.
const metaKey = "\x00partition"

// errStateFormat wraps every changelog decoding failure.
var errStateFormat = errors.New("scorer-state: bad encoding")

// seenID is a transaction_id remembered for de-duplication, with its
// de-duplication time: the record's event time, or the watermark it
// arrived at if later (a late record is remembered for the full horizon
// from its arrival, not from its older event time); and the content
// fingerprint of the transaction first seen with it (event.Fingerprint; 0
// when restored from a version 2 changelog, which did not keep it).
type seenID struct {
	id string
	at int64 // Unix ms
	fp uint64
}

// seenAt is the de-duplication index's entry for a transaction_id: its
// de-duplication time and content fingerprint, as in seenID.
type seenAt struct {
	at int64
	fp uint64
}

// cardState is everything a task remembers about one card: its look-back
// series, its latest transaction in event time (for distance and speed),
// the places it was at in person, the running baseline of its amounts, and
// the transaction_ids of its records within the de-duplication horizon. It is written to the
// changelog whole, so a restore reproduces it exactly.
type cardState struct {
	series *windowing.Series

	// last is the latest de-duplication time of any of the card's records
	// since its state was last emptied: once the watermark's floor reaches
	// it, everything the card holds has expired.
	last int64

	hasPrev, prevHasLoc bool
	prevT               int64 // Unix ms
	prevLat, prevLon    float64

	// The places of the card's in-person transactions in the look-back
	// retention, places[:nplaces] (features.go, arrival_kmh).
	places  [maxPlaces]place
	nplaces int

	// mem is the card's long memory (memory.go); it and places outlive
	// the look-back, up to memoryRetention.
	mem memory

	// Welford's running mean and sum of squared deviations of the card's
	// amounts (US cents), and the running mean of their logarithms
	// (amount_ratio), over the same n amounts.
	n        int64
	mean, m2 float64
	logMean  float64

	ids []seenID // ascending by at

	encSize int  // length of the last changelog value, to size the next
	dirty   bool // in the task's dirty list: changed since the last flush
}

func newCardState(lb *windowing.Lookback) *cardState {
	return &cardState{series: lb.NewSeries(), last: math.MinInt64}
}

// reset empties the state as if the card had never been seen, keeping the
// memory of the series and its place on the task's dirty list.
func (cs *cardState) reset() {
	cs.series.Reset()
	*cs = cardState{series: cs.series, last: math.MinInt64, ids: cs.ids[:0], dirty: cs.dirty}
}

// resetShort empties what the card holds for the look-back retention
// only (its series, latest transaction and ids), keeping its long memory,
// places and amount baseline: the card went quiet for a day, not away.
func (cs *cardState) resetShort() {
	cs.series.Reset()
	cs.hasPrev, cs.prevHasLoc, cs.prevT, cs.prevLat, cs.prevLon = false, false, 0, 0, 0
	cs.ids = cs.ids[:0]
}

// expiresAt is the time the card's state is filed under for eviction: it
// has wholly expired once the look-back floor reaches it, which is when
// both its look-back state (last) and its long memory have.
func (cs *cardState) expiresAt() int64 {
	return max(cs.last, cs.mem.last+(memoryRetention-retention).Milliseconds())
}

// addID remembers a transaction_id and its fingerprint, keeping ids
// ordered by time; times arrive nearly in order, so this is nearly always
// an append.
func (cs *cardState) addID(id string, at int64, fp uint64) {
	i := len(cs.ids)
	for i > 0 && cs.ids[i-1].at > at {
		i--
	}
	cs.ids = slices.Insert(cs.ids, i, seenID{id, at, fp})
	cs.last = max(cs.last, at)
}

// pruneIDs drops the ids at or below floor and calls drop for each.
func (cs *cardState) pruneIDs(floor int64, drop func(seenID)) {
	i := 0
	for i < len(cs.ids) && cs.ids[i].at <= floor {
		drop(cs.ids[i])
		i++
	}
	if i > 0 {
		cs.ids = slices.Delete(cs.ids, 0, i)
	}
}

// observe adds an amount to the baseline.
func (cs *cardState) observe(amount int64) {
	cs.n++
	x := float64(amount)
	d := x - cs.mean
	cs.mean += d / float64(cs.n)
	cs.m2 += d * (x - cs.mean)
	cs.logMean += (logCents(amount) - cs.logMean) / float64(cs.n)
}

// appendBinary appends the changelog value of the card.
//
// Format (version 4): the version byte; last as a zig-zag varint; a flags
// byte (bit 0: has a previous transaction, bit 1: it had a location); if
// there is one, its time as a zig-zag varint and, with a location, latitude
// and longitude as little-endian float64 bits; the baseline count as a
// uvarint and, if not 0, mean, m2 and logMean as float64 bits; the place
// count as a uvarint and per place its latitude, longitude, arrival speed
// as float64 bits and its last time as a zig-zag varint and its visits as a
// uvarint; the long memory (appendMemory, memory.go); the id count as a
// uvarint and per id its time as a zig-zag varint delta to the previous one
// (the first to last), its length as a uvarint, its bytes and its content
// fingerprint as a little-endian uint64; then the rest of the value is the
// series (windowing.Series.AppendBinary, which carries its own version
// byte).
//
// Version 3, written before long memory, lacks it and the places' visits:
// it is decoded with an empty memory and every place visited once. Version
// 2 also lacks the ids' fingerprints: they are decoded as 0, unknown, and a
// record repeating such an id is taken for a redelivery, as version 2 took
// every repeat (docs/design/transaction-ids.md). Version 1, written before
// places and logMean existed, lacks those too: it is decoded with no places
// and logMean the logarithm of mean, an approximation that later amounts
// wash out.
func (cs *cardState) appendBinary(b []byte) ([]byte, error) {
	b = append(b, cardStateVersion)
	b = binary.AppendVarint(b, cs.last)
	var flags byte
	if cs.hasPrev {
		flags |= 1
	}
	if cs.prevHasLoc {
		flags |= 2
	}
	b = append(b, flags)
	if cs.hasPrev {
		b = binary.AppendVarint(b, cs.prevT)
		if cs.prevHasLoc {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.prevLat))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.prevLon))
		}
	}
	b = binary.AppendUvarint(b, uint64(cs.n))
	if cs.n > 0 {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.mean))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.m2))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(cs.logMean))
	}
	b = binary.AppendUvarint(b, uint64(cs.nplaces))
	for _, p := range cs.places[:cs.nplaces] {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.lat))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.lon))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.arrivalKmh))
		b = binary.AppendVarint(b, p.last)
		b = binary.AppendUvarint(b, uint64(p.visits))
	}
	b = appendMemory(b, &cs.mem)
	b = binary.AppendUvarint(b, uint64(len(cs.ids)))
	prev := cs.last
	for _, x := range cs.ids {
		b = binary.AppendVarint(b, x.at-prev)
		b = binary.AppendUvarint(b, uint64(len(x.id)))
		b = append(b, x.id...)
		b = binary.LittleEndian.AppendUint64(b, x.fp)
		prev = x.at
	}
	return cs.series.AppendBinary(b)
}

// decodeCardState decodes a changelog value into a fresh state.
func decodeCardState(lb *windowing.Lookback, data []byte) (*cardState, error) {
	cs := newCardState(lb)
	d := decoder{p: data}
	v := d.byte()
	if v < 1 || v > cardStateVersion {
		return nil, fmt.Errorf("%w: card state version %d, want 1 to %d", errStateFormat, v, cardStateVersion)
	}
	cs.last = d.varint()
	flags := d.byte()
	if flags&^3 != 0 {
		return nil, fmt.Errorf("%w: card state flags %#x", errStateFormat, flags)
	}
	cs.hasPrev, cs.prevHasLoc = flags&1 != 0, flags&2 != 0
	if cs.hasPrev {
		cs.prevT = d.varint()
		if cs.prevHasLoc {
			cs.prevLat, cs.prevLon = d.float(), d.float()
		}
	}
	if n := d.uvarint(); n > 0 {
		cs.n = int64(n)
		cs.mean, cs.m2 = d.float(), d.float()
		if v == 1 {
			cs.logMean = math.Log(max(cs.mean, 1))
		} else {
			cs.logMean = d.float()
		}
	}
	if v >= 2 {
		n := d.uvarint()
		if d.err == nil && n > maxPlaces {
			d.err = fmt.Errorf("%w: %d places, at most %d", errStateFormat, n, maxPlaces)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			cs.places[i] = place{lat: d.float(), lon: d.float(), arrivalKmh: d.float(), last: d.varint(), visits: 1}
			if v >= 4 {
				cs.places[i].visits = uint16(min(d.uvarint(), math.MaxUint16))
			}
			cs.nplaces++
		}
	}
	if v >= 4 {
		decodeMemory(&d, &cs.mem)
	}
	nids := d.uvarint()
	if d.err == nil && nids > uint64(len(d.p)) { // every id takes at least two bytes
		d.err = fmt.Errorf("%w: %d ids in %d bytes", errStateFormat, nids, len(d.p))
	}
	if d.err == nil {
		cs.ids = make([]seenID, 0, nids)
	}
	prev := cs.last
	for i := uint64(0); i < nids && d.err == nil; i++ {
		at := prev + d.varint()
		n := d.uvarint()
		id := d.bytes(n)
		var fp uint64
		if v >= 3 {
			fp = d.uint64()
		}
		cs.ids = append(cs.ids, seenID{string(id), at, fp})
		prev = at
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := cs.series.UnmarshalBinary(d.p); err != nil {
		return nil, fmt.Errorf("%w: series: %w", errStateFormat, err)
	}
	return cs, nil
}

// appendMeta appends the changelog value of the partition metadata: the
// version byte and the watermark generator's largest event time seen as a
// zig-zag varint (watermark.None before any record).
func appendMeta(b []byte, maxSeen int64) []byte {
	b = append(b, metaVersion)
	return binary.AppendVarint(b, maxSeen)
}

func decodeMeta(data []byte) (maxSeen int64, err error) {
	d := decoder{p: data}
	if v := d.byte(); v != metaVersion {
		return 0, fmt.Errorf("%w: partition metadata version %d, want %d", errStateFormat, v, metaVersion)
	}
	maxSeen = d.varint()
	if d.err == nil && len(d.p) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes in partition metadata", errStateFormat, len(d.p))
	}
	return maxSeen, d.err
}

// decoder reads the changelog encoding; after the first error every read
// returns zero and err keeps that error.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errStateFormat, what)
	}
	d.p = nil
}

func (d *decoder) byte() byte {
	if len(d.p) < 1 {
		d.fail("byte")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.p) < 8 {
		d.fail("uint64")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.p)
	d.p = d.p[8:]
	return v
}

func (d *decoder) float() float64 {
	if len(d.p) < 8 {
		d.fail("float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.p))
	d.p = d.p[8:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if n > uint64(len(d.p)) {
		d.fail("bytes")
		return nil
	}
	b := d.p[:n]
	d.p = d.p[n:]
	return b
}
