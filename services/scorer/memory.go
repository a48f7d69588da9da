package scorer

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/pkg/windowing"
)

// Long memory per card (docs/detection.md): what the card has done over
// weeks rather than the look-back's 24 hours, in a bounded space. A card
// remembers a few of each kind of value it has used (countries, merchant
// categories, merchants, devices, networks), each with when it was first
// and last seen and how often; a value not seen for memoryRetention is
// forgotten, and a full kind evicts its least useful entry (seen once
// before others, then least recently). Places (features.go) live as long.
//
// Determinism: as with the look-back, every lookup ignores entries at or
// below the memory floor of the watermark before the record, and pruning
// only drops entries at or below the floor of the current watermark, so
// whether a forgotten entry is still held never changes a result.
const (
	// memoryRetention is how long a card remembers a value it no longer
	// uses, and how long a card's state lives without transactions.
	memoryRetention = 35 * 24 * time.Hour

	// historyKnown is how many remembered transactions make a card known:
	// below it, a device, address or merchant the card has not used
	// before says nothing (every value of a new card is new).
	historyKnown = 3

	// burstWindowMin is the span of repeat_merchant_10m, in minutes.
	burstWindowMin = 10
	// newWithinMin: a device or network first used by the card less than
	// this long ago (minutes) is new (new_device, new_ip): a stolen
	// account's device stays new for the whole spree, not only its first
	// purchase.
	newWithinMin = 24 * 60
	// knownAfterMin: a device first used by the card at least this long
	// ago (minutes) was part of its life before the current burst
	// (device_known): card testing brings its own device, an in-app
	// burst comes from the holder's.
	knownAfterMin = 60
)

// memKind is what a memory entry remembers.
type memKind uint8

const (
	memCountry memKind = iota
	memMCC
	memMerchant
	memDevice
	memNetwork // the IP address's network: its /24 (IPv4) or /48 (IPv6)
	numMemKinds
)

// memCap bounds the entries of each kind.
var memCap = [numMemKinds]int{memCountry: 4, memMCC: 6, memMerchant: 8, memDevice: 3, memNetwork: 3}

// memEntry is one remembered value: its 8-byte hash (windowing.Hash), the
// Unix minutes it was first and last seen, how often (saturating), and
// for a merchant category the mean logarithm of the card's amounts there
// (US cents, ×1000, an exponential mean once n saturates).
type memEntry struct {
	h           uint64
	first, last uint32
	n           uint16
	kind        memKind
	logAmt      int16
}

// memory is a card's long memory. entries holds at most memCap[k] entries
// of each kind k, in no particular order.
type memory struct {
	entries []memEntry
	// first and last are the Unix ms of the card's first and latest
	// remembered transactions; count how many there were (saturating).
	first, last int64
	count       uint32
}

func minuteOf(ms int64) uint32 { return uint32(max(windowing.BucketIndex(ms, 60_000), 0)) }

// live reports whether an entry last seen at minute m is above floor (ms).
func live(m uint32, floor int64) bool { return int64(m)*60_000 > floor }

// find returns the index of the live entry of kind k and hash h, or -1.
func (m *memory) find(k memKind, h uint64, floor int64) int {
	for i := range m.entries {
		e := &m.entries[i]
		if e.h == h && e.kind == k && live(e.last, floor) {
			return i
		}
	}
	return -1
}

// hasOlder reports whether the card remembers a live entry of kind k
// first seen before minute before.
func (m *memory) hasOlder(k memKind, before uint32, floor int64) bool {
	for i := range m.entries {
		e := &m.entries[i]
		if e.kind == k && e.first < before && live(e.last, floor) {
			return true
		}
	}
	return false
}

// fresh reports whether value h of kind k is new to the card: first used
// less than newWithinMin ago (or not at all), while the card has used
// others of its kind for longer; and whether the card first used it at
// least knownAfterMin ago.
func (m *memory) fresh(k memKind, h uint64, now uint32, floor int64) (isNew, known bool) {
	since := now - min(now, newWithinMin)
	i := m.find(k, h, floor)
	known = i >= 0 && m.entries[i].first+knownAfterMin <= now
	if i >= 0 && m.entries[i].first < since {
		return false, known
	}
	return m.hasOlder(k, since, floor), known
}

// recent counts the live entries of kind k last seen at or after minute
// since.
func (m *memory) recent(k memKind, since uint32) int64 {
	var n int64
	for i := range m.entries {
		if m.entries[i].kind == k && m.entries[i].last >= since {
			n++
		}
	}
	return n
}

// see records value h of kind k at minute min; for memMCC, logAmt is the
// amount's log ×1000. A full kind evicts the entry seen once and least
// recently, else the least recently seen one.
func (m *memory) see(k memKind, h uint64, at uint32, logAmt int16, floor int64) {
	if i := m.find(k, h, floor); i >= 0 {
		e := &m.entries[i]
		if e.n < math.MaxUint16 {
			e.n++
		}
		e.last = max(e.last, at)
		e.first = min(e.first, at)
		if k == memMCC {
			w := int32(min(e.n, 64)) // the mean of the last ~64 amounts
			e.logAmt = int16(int32(e.logAmt) + (int32(logAmt)-int32(e.logAmt))/w)
		}
		return
	}
	n, victim := 0, -1
	for i := range m.entries {
		e := &m.entries[i]
		if e.kind != k {
			continue
		}
		n++
		if victim < 0 || worse(e, &m.entries[victim]) {
			victim = i
		}
	}
	e := memEntry{h: h, first: at, last: at, n: 1, kind: k, logAmt: logAmt}
	if n >= memCap[k] {
		m.entries[victim] = e
		return
	}
	m.entries = append(m.entries, e)
}

// worse reports whether a is a better eviction victim than b.
func worse(a, b *memEntry) bool {
	if (a.n == 1) != (b.n == 1) {
		return a.n == 1
	}
	return a.last < b.last
}

// prune forgets the entries last seen at or below floor, keeping the
// others in order.
func (m *memory) prune(floor int64) {
	n := 0
	for _, e := range m.entries {
		if live(e.last, floor) {
			m.entries[n] = e
			n++
		}
	}
	m.entries = m.entries[:n]
	if m.last <= floor {
		m.first, m.count = 0, 0
	}
}

// networkHash is the hash of the network of address ip (its /24 or /48),
// 0 when there is none or it does not parse: a household or office keeps
// its network while its address changes.
func networkHash(ip string) uint64 {
	if ip == "" {
		return 0 // and no parse error to allocate
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return 0
	}
	bits := 48
	if a.Is4() || a.Is4In6() {
		a, bits = a.Unmap(), 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return 0
	}
	b := p.Addr().As16()              // no allocation, unlike MarshalBinary
	h := uint64(14695981039346656037) // FNV-1a, as windowing.Hash
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h | 1 // never 0
}

// memKeys are the hashes of a transaction's remembered values, computed
// once for its features and its remembering (0: none).
type memKeys struct {
	country, mcc, merchant, device, network uint64
}

func keysOf(tx *event.Transaction) memKeys {
	k := memKeys{
		country:  windowing.Hash(tx.MerchantCountry),
		mcc:      windowing.Hash(tx.MerchantCategory),
		merchant: windowing.Hash(tx.MerchantID),
		network:  networkHash(tx.IP),
	}
	if tx.DeviceID != "" {
		k.device = windowing.Hash(tx.DeviceID) | 1
	}
	return k
}

// logMilli is the logarithm of an amount in US cents, ×1000, as memEntry
// keeps it.
func logMilli(cents int64) int16 { return int16(min(logCents(cents)*1000, math.MaxInt16)) }

// memoryFeatures fills the features of long memory for a transaction at
// ts against entries above floor (before the transaction is remembered).
func memoryFeatures(f *event.Features, m *memory, k *memKeys, ts, floor int64, cents int64) {
	known := m.last > floor && m.count >= historyKnown
	if m.last > floor {
		f.HistoryCount = int64(m.count)
		f.HistoryDays = float64(ts-m.first) / float64(24*time.Hour/time.Millisecond)
		f.HistoryDays = max(f.HistoryDays, 0)
	}
	// A card without history has no country to be new against.
	f.NewCountry = m.last > floor && m.count > 0 && m.find(memCountry, k.country, floor) < 0
	now := minuteOf(ts)
	if i := m.find(memMerchant, k.merchant, floor); i >= 0 {
		e := &m.entries[i]
		f.MerchantVisits = int64(e.n)
		f.RepeatMerchant10m = e.last+burstWindowMin >= now
		f.MerchantDays = float64(now-min(now, e.first)) / (24 * 60)
	} else {
		f.NewMerchant = true
	}
	if i := m.find(memMCC, k.mcc, floor); i >= 0 {
		f.AmountRatioMCC = math.Exp(logCents(cents) - float64(m.entries[i].logAmt)/1000)
	}
	if h := k.device; h != 0 {
		isNew, seen := m.fresh(memDevice, h, now, floor)
		f.NewDevice = known && isNew
		f.DeviceKnown = seen
		f.Devices1h = m.recent(memDevice, now-min(now, 60))
		if i := m.find(memDevice, h, floor); i < 0 || m.entries[i].last < now-min(now, 60) {
			f.Devices1h++ // this one, unless counted already
		}
	}
	if h := k.network; h != 0 {
		isNew, _ := m.fresh(memNetwork, h, now, floor)
		f.NewIP = known && isNew
	}
}

// remember adds a transaction at ts to the card's long memory.
func (m *memory) remember(k *memKeys, ts, floor int64, cents int64) {
	at := minuteOf(ts)
	if m.last <= floor || m.count == 0 {
		m.first, m.count = ts, 0
	}
	m.first = min(m.first, ts)
	m.last = max(m.last, ts)
	if m.count < math.MaxUint32 {
		m.count++
	}
	if m.entries == nil {
		m.entries = make([]memEntry, 0, 8) // a usual card's, allocated once
	}
	m.see(memCountry, k.country, at, 0, floor)
	m.see(memMCC, k.mcc, at, logMilli(cents), floor)
	m.see(memMerchant, k.merchant, at, 0, floor)
	if k.device != 0 {
		m.see(memDevice, k.device, at, 0, floor)
	}
	if k.network != 0 {
		m.see(memNetwork, k.network, at, 0, floor)
	}
}

// appendMemory appends the encoding of m (card state version 3): last,
// and last − first, as zig-zag varints, count and the entry count as
// uvarints, then per entry its kind byte, hash as 8 little-endian bytes,
// the minute of last minus its last as a zig-zag varint (small: entries
// are seen up to the card's latest transaction), its last − first as a
// uvarint, n as a uvarint and logAmt as a zig-zag varint.
func appendMemory(b []byte, m *memory) []byte {
	b = binary.AppendVarint(b, m.last)
	b = binary.AppendVarint(b, m.last-m.first)
	b = binary.AppendUvarint(b, uint64(m.count))
	b = binary.AppendUvarint(b, uint64(len(m.entries)))
	ref := int64(minuteOf(m.last))
	for _, e := range m.entries {
		b = append(b, byte(e.kind))
		b = binary.LittleEndian.AppendUint64(b, e.h)
		b = binary.AppendVarint(b, ref-int64(e.last))
		b = binary.AppendUvarint(b, uint64(e.last-e.first))
		b = binary.AppendUvarint(b, uint64(e.n))
		b = binary.AppendVarint(b, int64(e.logAmt))
	}
	return b
}

// decodeMemory reads what appendMemory wrote, checking the bounds.
func decodeMemory(d *decoder, m *memory) {
	m.last = d.varint()
	m.first = m.last - d.varint()
	m.count = uint32(min(d.uvarint(), math.MaxUint32))
	n := d.uvarint()
	max := 0
	for _, c := range memCap {
		max += c
	}
	if d.err == nil && n > uint64(max) {
		d.err = fmt.Errorf("%w: %d memory entries, at most %d", errStateFormat, n, max)
		return
	}
	var per [numMemKinds]int
	m.entries = make([]memEntry, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := memKind(d.byte())
		if k >= numMemKinds || per[k] == memCap[k] {
			d.err = fmt.Errorf("%w: memory entry kind %d", errStateFormat, k)
			return
		}
		per[k]++
		e := memEntry{kind: k, h: d.uint64()}
		ref := int64(minuteOf(m.last))
		if last := ref - d.varint(); last >= 0 && last <= math.MaxUint32 {
			e.last = uint32(last)
		} else if d.err == nil {
			d.err = fmt.Errorf("%w: memory entry time %d", errStateFormat, last)
			return
		}
		e.first = e.last - uint32(min(d.uvarint(), uint64(e.last)))
		e.n = uint16(min(d.uvarint(), math.MaxUint16))
		e.logAmt = int16(d.varint())
		m.entries = append(m.entries, e)
	}
}
