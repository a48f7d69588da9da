package scorer

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/fraudstream/fraudstream/pkg/event"
	"github.com/fraudstream/fraudstream/services/scorer/rules"
)

// TestRuleBookKeys: a fraud-rules record with a field this release does
// not know (a newer publisher) applies; one with a duplicate key is
// refused and the set in force stays.
func TestRuleBookKeys(t *testing.T) {
	v := func(version int64) []byte {
		b, err := event.RuleSet{Version: version, Rules: []event.Rule{{ID: "ecom", Expression: `channel == "ecommerce"`,
			Weight: 0.5, ReasonCode: "ECOM", Mode: event.ModeActive}}}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	withMember := func(b []byte, m string) []byte { return append(b[:len(b)-1:len(b)-1], ","+m+"}"...) }
	for _, tc := range []struct {
		name    string
		value   []byte
		version int64 // in force afterwards
		err     string
	}{
		{"unknown field", withMember(v(7), `"approval":{"by":"x","ticket":42}`), 7, ""},
		{"key in another case", withMember(v(7), `"Version":99`), 7, ""},
		{"duplicate key", withMember(v(7), `"version":99`), 0, "/version: duplicate key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			initial, err := rules.CompileDefault()
			if err != nil {
				t.Fatal(err)
			}
			b := newRuleBook(initial, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			want := tc.version
			if want == 0 {
				want = initial.Version()
			}
			err = b.applyValue(tc.value)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("applyValue: %v, want error containing %q", err, tc.err)
			}
			if got := b.current().Version(); got != want {
				t.Fatalf("version in force %d, want %d", got, want)
			}
		})
	}
}
