package alerts

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The stored form of a scored record (docs/design/storage.md): the record
// value exactly as consumed, compressed with zstd and a dictionary trained
// on scored records. The first byte names the format, so that rows of
// every format stay readable as the dictionary is replaced:
//
//	'{'  plain JSON (rows moved from a database older than migration 0004)
//	0x01 zstd with dictionary v1 (recorddict/v1.dict, dictionary id 1),
//	     the frame without its 4-byte magic number
//
// A new dictionary gets a new format byte and id; the old one stays
// embedded for as long as rows may use it.
const (
	formatZstdV1 byte = 0x01
)

//go:embed recorddict/v1.dict
var dictV1 []byte

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

var codec = sync.OnceValues(func() (*recordCodec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderDict(dictV1), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("record codec: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderDicts(dictV1), zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, fmt.Errorf("record codec: %w", err)
	}
	return &recordCodec{enc: enc, dec: dec}, nil
})

// recordCodec compresses and expands stored records. EncodeAll and
// DecodeAll are safe for concurrent use.
type recordCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// compressRecord returns the stored form of a record value.
func compressRecord(value []byte) ([]byte, error) {
	c, err := codec()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1, len(value)/4+16)
	out[0] = formatZstdV1
	frame := c.enc.EncodeAll(value, nil)
	if !bytes.HasPrefix(frame, zstdMagic) {
		return nil, errors.New("record codec: zstd frame without magic number")
	}
	return append(out, frame[len(zstdMagic):]...), nil
}

// expandRecord returns the record value a stored form holds, byte for byte
// as it was consumed (plain JSON rows as they were moved).
func expandRecord(stored []byte) ([]byte, error) {
	if len(stored) == 0 {
		return nil, errors.New("stored record is empty")
	}
	switch stored[0] {
	case '{':
		return stored, nil
	case formatZstdV1:
		c, err := codec()
		if err != nil {
			return nil, err
		}
		frame := make([]byte, 0, len(zstdMagic)+len(stored)-1)
		frame = append(append(frame, zstdMagic...), stored[1:]...)
		out, err := c.dec.DecodeAll(frame, nil)
		if err != nil {
			return nil, fmt.Errorf("stored record: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("stored record: unknown format byte 0x%02x (written by a newer release?)", stored[0])
	}
}

// sameRecord reports whether two record values are the same record: the
// same bytes, or (for rows moved from PostgreSQL's jsonb, which kept the
// content but not the bytes) the same JSON content.
func sameRecord(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
