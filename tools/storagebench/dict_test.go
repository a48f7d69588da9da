package storagebench

import (
	"bufio"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestBuildDict writes the record dictionary (DICT=path) from the records
// in RECORDS (NDJSON), as services/alerts/recorddict/v1.dict was built.
func TestBuildDict(t *testing.T) {
	out, in := os.Getenv("DICT"), os.Getenv("RECORDS")
	if out == "" || in == "" {
		t.Skip("DICT and RECORDS not set")
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
	var h []byte
	for i := 0; len(h) < 32<<10; i += 7 {
		h = append(h, recs[i%len(recs)]...)
	}
	d, err := zstd.BuildDict(zstd.BuildDictOptions{ID: 1, Contents: recs[:2000], History: h[:32<<10], Offsets: [3]int{1, 4, 8}, Level: zstd.SpeedDefault})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, d, 0o644); err != nil {
		t.Fatal(err)
	}
}
