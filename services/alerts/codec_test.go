package alerts

import (
	"bytes"
	"strings"
	"testing"
)

// TestRecordCodec: the stored form expands to the consumed bytes exactly,
// unknown fields and odd spacing included, and is much smaller; plain
// JSON rows (moved by migration 0004) read as they are; an unknown format
// is an error naming it.
func TestRecordCodec(t *testing.T) {
	sc := scored("codec-1", "review")
	v, err := sc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	newer := append(bytes.TrimSuffix(append([]byte(nil), v...), []byte("}")), []byte(`, "future_feature" : {"x":1e3,"y":[1,2]}}`)...)
	for _, tt := range []struct {
		name  string
		value []byte
	}{
		{"as encoded", v},
		{"with an unknown field and spaces", newer},
		{"empty object", []byte(`{}`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := compressRecord(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if c[0] != formatZstdV1 {
				t.Fatalf("format byte 0x%02x, want 0x%02x", c[0], formatZstdV1)
			}
			got, err := expandRecord(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.value) {
				t.Fatalf("expanded %s, want %s", got, tt.value)
			}
			if len(tt.value) > 300 && len(c)*3 > len(tt.value) {
				t.Errorf("stored form %d B of %d B: the dictionary does not compress", len(c), len(tt.value))
			}
		})
	}
	if got, err := expandRecord(v); err != nil || !bytes.Equal(got, v) {
		t.Fatalf("plain JSON row: %s, %v", got, err)
	}
	if _, err := expandRecord([]byte{0x7f, 1, 2}); err == nil || !strings.Contains(err.Error(), "unknown format byte 0x7f") {
		t.Fatalf("unknown format: %v", err)
	}
	if _, err := expandRecord(nil); err == nil {
		t.Fatal("empty stored record: no error")
	}
}

func TestSameRecord(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"a":1,"b":[1,2]}`, true},
		{`{"a":1,"b":[1,2]}`, `{"b": [1, 2], "a": 1}`, true}, // jsonb's text form of a moved row
		{`{"a":1}`, `{"a":2}`, false},
		{`{"a":0.30000000000000004}`, `{"a":0.3}`, false},
		{`{"a":1}`, `not json`, false},
	} {
		if got := sameRecord([]byte(tt.a), []byte(tt.b)); got != tt.want {
			t.Errorf("sameRecord(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
