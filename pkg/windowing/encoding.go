package windowing

import (
	"encoding/binary"
	"fmt"
)

// seriesVersion is the first byte of an encoded Series.
const seriesVersion = 1

// AppendBinary appends the compact encoding of the series to b.
//
// Format (version 1): the version byte; the eviction cutoff as a zig-zag
// varint; per distinct dimension of the Lookback the dictionary length as a uvarint and
// that many little-endian uint64 values (0 = free slot); the record count as
// a uvarint; per record, in event-time order, the time delta to the
// previous record (the first relative to the cutoff) as a uvarint, the
// value as a zig-zag varint, the flags byte and one slot byte per
// dimension. The number of dimensions is not stored: a series decodes
// only with a Lookback of the same number (WithDistinctDims). Buckets are not stored: they are rebuilt from the records.
// The same history of calls always gives the same bytes.
func (s *Series) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, seriesVersion)
	b = binary.AppendVarint(b, s.cutoff)
	for d := range s.dims {
		b = binary.AppendUvarint(b, uint64(len(s.dims[d].dict)))
		for _, v := range s.dims[d].dict {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	}
	rs := s.recs[s.head:]
	b = binary.AppendUvarint(b, uint64(len(rs)))
	prev := s.cutoff
	for i := range rs {
		r := &rs[i]
		b = binary.AppendUvarint(b, uint64(r.t-prev))
		b = binary.AppendVarint(b, r.v)
		b = append(b, r.flags)
		// All MaxDistinctDims slots, then cut back to the Lookback's: a
		// fixed-size append is a single store, a variable one a memmove.
		b = append(b, r.slot[:]...)
		b = b[:len(b)-(MaxDistinctDims-len(s.dims))]
		prev = r.t
	}
	return b, nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (s *Series) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, 16+len(s.recs)*8))
}

// UnmarshalBinary replaces the series' state with the decoded one. The
// series must come from Lookback.NewSeries (it keeps its configuration).
func (s *Series) UnmarshalBinary(data []byte) error {
	if s.lb == nil {
		return fmt.Errorf("%w: series without a Lookback", ErrConfig)
	}
	if err := s.decode(data); err != nil {
		s.Reset()
		return err
	}
	return nil
}

func (s *Series) decode(data []byte) error {
	s.Reset()
	if len(data) == 0 || data[0] != seriesVersion {
		return fmt.Errorf("%w: unknown version", ErrFormat)
	}
	p := data[1:]
	cutoff, n := binary.Varint(p)
	if n <= 0 || cutoff < MinTime-1 || cutoff > MaxTime {
		return fmt.Errorf("%w: cutoff", ErrFormat)
	}
	p = p[n:]
	s.cutoff = cutoff
	nd := len(s.dims)
	for d := range s.dims {
		dm := &s.dims[d]
		k, n := binary.Uvarint(p)
		if n <= 0 || k > DistinctCap || uint64(len(p)-n) < k*8 {
			return fmt.Errorf("%w: dictionary", ErrFormat)
		}
		p = p[n:]
		for i := range int(k) {
			v := binary.LittleEndian.Uint64(p[i*8:])
			for _, w := range dm.dict {
				if v != 0 && w == v {
					return fmt.Errorf("%w: duplicate dictionary value", ErrFormat)
				}
			}
			dm.dict = append(dm.dict, v)
		}
		p = p[k*8:]
		for range k {
			dm.lastT = append(dm.lastT, MinTime-1)
		}
		dm.reindex()
	}
	cnt, n := binary.Uvarint(p)
	if n <= 0 || cnt > uint64(len(p)) { // every record takes at least one byte
		return fmt.Errorf("%w: record count", ErrFormat)
	}
	p = p[n:]
	prev := cutoff
	for range cnt {
		dt, n := binary.Uvarint(p)
		if n <= 0 || (prev == cutoff && dt == 0) || dt > uint64(MaxTime-prev) {
			return fmt.Errorf("%w: record time", ErrFormat)
		}
		p = p[n:]
		v, n := binary.Varint(p)
		if n <= 0 || len(p) < n+1+nd {
			return fmt.Errorf("%w: record", ErrFormat)
		}
		p = p[n:]
		x := rec{t: prev + int64(dt), v: v, flags: p[0]}
		if x.flags&^s.lb.flagMask != 0 {
			return fmt.Errorf("%w: record flags", ErrFormat)
		}
		for d := range nd {
			sl := p[1+d]
			if sl != 0 && sl != overSlot && (int(sl) > len(s.dims[d].dict) || s.dims[d].dict[sl-1] == 0) {
				return fmt.Errorf("%w: record slot", ErrFormat)
			}
			x.slot[d] = sl
		}
		p = p[1+nd:]
		s.insert(x) // in time order: appends
		prev = x.t
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrFormat, len(p))
	}
	return nil
}
