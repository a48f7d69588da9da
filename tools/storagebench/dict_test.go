package storagebench

import (
	"bufio"
	"os"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestBuildDict writes a record dictionary (DICT=path, DICT_ID=id) from
// records sampled evenly from RECORDS (NDJSON from TestWrite), as
// services/alerts/recorddict/v1.dict was built from 1,000,000 records:
//
//	DICT=services/alerts/recorddict/v1.dict DICT_ID=1 DICT_KB=64 RECORDS=recs.ndjson go test -run TestBuildDict ./tools/storagebench/
//
// It reports the average stored size on records it was not built from.
func TestBuildDict(t *testing.T) {
	out, in := os.Getenv("DICT"), os.Getenv("RECORDS")
	if out == "" || in == "" {
		t.Skip("DICT and RECORDS not set")
	}
	id, err := strconv.Atoi(os.Getenv("DICT_ID"))
	if err != nil || id < 1 {
		t.Fatal("DICT_ID: a positive dictionary id is required")
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		recs = append(recs, append([]byte(nil), sc.Bytes()...))
	}
	// Build from every other sampled record, test on the rest.
	stride := max(len(recs)/4000, 1)
	var build, test [][]byte
	for i := 0; i < len(recs); i += stride {
		if (i/stride)%2 == 0 {
			build = append(build, recs[i])
		} else {
			test = append(test, recs[i])
		}
	}
	histSize := 32 << 10
	if v, err := strconv.Atoi(os.Getenv("DICT_KB")); err == nil && v > 0 {
		histSize = v << 10
	}
	var h []byte
	for i := 0; len(h) < histSize; i = (i + 7) % len(build) {
		h = append(h, build[i]...)
	}
	d, err := zstd.BuildDict(zstd.BuildDictOptions{ID: uint32(id), Contents: build, History: h[:histSize],
		Offsets: [3]int{1, 4, 8}, Level: zstd.SpeedDefault})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderDict(d), zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	raw, packed := 0, 0
	for _, r := range test {
		raw += len(r)
		packed += len(enc.EncodeAll(r, nil))
	}
	t.Logf("dictionary %d B from %d records; %d held-out records: JSON %d B, compressed %d B on average",
		len(d), len(build), len(test), raw/len(test), packed/len(test))
	if err := os.WriteFile(out, d, 0o644); err != nil {
		t.Fatal(err)
	}
}
