package storagebench

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// TestWrite: every line is a valid scored record, ids are distinct.
//
// With DUMP=path and DUMP_N=n it writes n records there instead, for the
// storage measurements of docs/design/storage.md.
func TestWrite(t *testing.T) {
	n, out := 2000, ""
	if p := os.Getenv("DUMP"); p != "" {
		out = p
		if v, err := strconv.Atoi(os.Getenv("DUMP_N")); err == nil {
			n = v
		}
	}
	var buf bytes.Buffer
	w := any(&buf)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := Write(f, n, 1, time.Now().UTC().Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		return
	}
	_ = w
	if err := Write(&buf, n, 1, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		s, err := event.DecodeScored(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.Transaction.TransactionID] {
			t.Fatalf("%s twice", s.Transaction.TransactionID)
		}
		seen[s.Transaction.TransactionID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d records, want %d", len(seen), n)
	}
}
