package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// The strict reference: a second reading of a JSON text, built on
// encoding/json's tokenizer rather than on keys.go, that a case-sensitive
// parser refusing duplicate keys would agree with. refDecode parses the
// text into a tree keeping every key exactly as written (after
// unescaping), fails on a duplicate key in any object, keeps for each
// struct only the members whose key is exactly a field name (an unknown
// key fails under RejectUnknown), and lets encoding/json decode what is
// left, which holds no key it could match by folding case.

type refNode struct {
	raw     []byte // a scalar as written
	keys    []string
	members []*refNode // object members, in order, with keys
	elems   []*refNode // array elements
	object  bool
	array   bool
}

var errRefDuplicate = errors.New("duplicate key")

func refParse(b []byte) (*refNode, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := refValue(dec, b)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the value: %v", err)
	}
	return n, nil
}

func refValue(dec *json.Decoder, b []byte) (*refNode, error) {
	start := dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		n := &refNode{object: true}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			if seen[k] {
				return nil, fmt.Errorf("%w %q", errRefDuplicate, k)
			}
			seen[k] = true
			v, err := refValue(dec, b)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, k)
			n.members = append(n.members, v)
		}
		_, err := dec.Token()
		return n, err
	case json.Delim('['):
		n := &refNode{array: true}
		for dec.More() {
			v, err := refValue(dec, b)
			if err != nil {
				return nil, err
			}
			n.elems = append(n.elems, v)
		}
		_, err := dec.Token()
		return n, err
	}
	raw := bytes.TrimLeft(b[start:dec.InputOffset()], " \t\r\n:,")
	return &refNode{raw: bytes.TrimLeft(raw, " \t\r\n")}, nil
}

// refProject writes n as the JSON that type t (nil: any) keeps of it.
func refProject(buf *bytes.Buffer, n *refNode, t reflect.Type, unknown Unknown) error {
	t = deref(t)
	switch {
	case n.object:
		var names map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct && !opaque(t) {
			names = map[string]reflect.Type{}
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name == "-" || !f.IsExported() {
					continue
				}
				if name == "" {
					name = f.Name
				}
				names[name] = f.Type
			}
		}
		buf.WriteByte('{')
		first := true
		for i, k := range n.keys {
			var ft reflect.Type
			if names != nil {
				var ok bool
				if ft, ok = names[k]; !ok {
					if unknown == RejectUnknown {
						return fmt.Errorf("unknown field %q", k)
					}
					continue
				}
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := refProject(buf, n.members[i], ft, unknown); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case n.array:
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		buf.WriteByte('[')
		for i, e := range n.elems {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := refProject(buf, e, et, unknown); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		buf.Write(n.raw)
	}
	return nil
}

// refDecode decodes b into a new value of v's type by the reference.
func refDecode(b []byte, t reflect.Type, unknown Unknown) (any, error) {
	n, err := refParse(b)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := refProject(&buf, n, t, unknown); err != nil {
		return nil, err
	}
	v := reflect.New(t)
	if err := json.Unmarshal(buf.Bytes(), v.Interface()); err != nil {
		return nil, err
	}
	return v.Elem().Interface(), nil
}

// checkAgainstReference holds Unmarshal, and for transactions the fast
// path too, to the reference: the same inputs fail, the others decode to
// the same value.
func checkAgainstReference[T any](t *testing.T, b []byte, unknown Unknown) {
	t.Helper()
	typ := reflect.TypeFor[T]()
	want, wantErr := refDecode(b, typ, unknown)
	var got T
	err := Unmarshal(b, &got, unknown)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q (%v): error %v, reference %v", b, unknown, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(any(got), want) {
		t.Fatalf("%q (%v): got\n%#v\nreference\n%#v", b, unknown, got, want)
	}
	if typ == transactionType {
		decode := DecodeTransaction
		if unknown == IgnoreUnknown {
			decode = DecodeTransactionRecord
		}
		tx, err := decode(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q (%v): decoder error %v, reference %v", b, unknown, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(tx, want) {
			t.Fatalf("%q (%v): decoder got\n%#v\nreference\n%#v", b, unknown, tx, want)
		}
	}
}

func keySeeds(t testing.TB) [][]byte {
	seeds := [][]byte{[]byte(validJSON)}
	for _, tc := range decodeCases {
		if len(tc.in) < 1000 {
			seeds = append(seeds, []byte(tc.in))
		}
	}
	sc := Scored{Transaction: mustDecode(t, validJSON), Decision: DecisionReview, Score: 0.5,
		Reasons: []Reason{{Code: "A", Source: SourceRule}}}
	b, err := sc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append(seeds, b,
		[]byte(`{"transaction":{"card_id":"a","Card_Id":"b"},"features":{"count_1m":1,"COUNT_1M":2}}`),
		[]byte(`{"reasons":[{"code":"A","code":"B"}],"score":0.5}`),
		[]byte(`{"reasons":[{"code":"A","Code":"B"}],"next":{"x":[1,2]}}`))
}

func mustDecode(t testing.TB, s string) Transaction {
	tx, err := DecodeTransaction([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

func TestDecodersMatchStrictReference(t *testing.T) {
	for _, b := range keySeeds(t) {
		for _, u := range []Unknown{RejectUnknown, IgnoreUnknown} {
			checkAgainstReference[Transaction](t, b, u)
			checkAgainstReference[Scored](t, b, u)
			checkAgainstReference[RuleSet](t, b, u)
		}
	}
}

// FuzzKeysAgainstStrictReference: whatever the input, the decoders agree
// with a case-sensitive, duplicate-refusing parser (refDecode).
func FuzzKeysAgainstStrictReference(f *testing.F) {
	for _, b := range keySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range []Unknown{RejectUnknown, IgnoreUnknown} {
			checkAgainstReference[Transaction](t, b, u)
			checkAgainstReference[Scored](t, b, u)
		}
	})
}

// TestKeysEveryDecoder: each decoder of the package refuses a duplicate
// key and treats a key differing from a field only in case as unknown,
// naming the key; record decoders ignore unknown keys, client decoders
// refuse them.
func TestKeysEveryDecoder(t *testing.T) {
	tx := mustDecode(t, validJSON)
	scored, err := Scored{Transaction: tx, Decision: DecisionApprove, Reasons: []Reason{}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stats, err := Stats{Partition: 1, WindowStart: now, WindowEnd: now.Add(60e9)}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := RuleSet{Version: 3, Rules: []Rule{{ID: "r1", Expression: "true", Weight: 0.5, ReasonCode: "R", Mode: ModeActive}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	profile := []byte(`{"home_country":"DE","account_opened":"2019-04-01","risk_tier":1}`)

	type decoder struct {
		name    string
		in      []byte
		unknown Unknown
		// decode returns the value of the field key names (as text), or
		// an error.
		decode func([]byte) (string, error)
		key    string // a top-level field, as JSON text "key":value
		other  string // the same key with another value
	}
	decoders := []decoder{
		{"DecodeTransaction", []byte(validJSON), RejectUnknown, func(b []byte) (string, error) {
			t, err := DecodeTransaction(b)
			return fmt.Sprint(t.AmountMinor), err
		}, `"amount_minor"`, `2`},
		{"DecodeTransactionString", []byte(validJSON), RejectUnknown, func(b []byte) (string, error) {
			t, err := DecodeTransactionString(string(b))
			return fmt.Sprint(t.AmountMinor), err
		}, `"amount_minor"`, `2`},
		{"DecodeTransactionRecord", []byte(validJSON), IgnoreUnknown, func(b []byte) (string, error) {
			t, err := DecodeTransactionRecord(b)
			return fmt.Sprint(t.AmountMinor), err
		}, `"amount_minor"`, `2`},
		{"DecodeScored", scored, IgnoreUnknown, func(b []byte) (string, error) {
			s, err := DecodeScored(b)
			return s.Decision, err
		}, `"decision"`, `"decline"`},
		{"DecodeStats", stats, IgnoreUnknown, func(b []byte) (string, error) {
			s, err := DecodeStats(b)
			return fmt.Sprint(s.Partition), err
		}, `"partition"`, `7`},
		{"DecodeRuleSet", rules, RejectUnknown, func(b []byte) (string, error) {
			rs, err := DecodeRuleSet(b)
			return fmt.Sprint(rs.Version), err
		}, `"version"`, `9`},
		{"DecodeRuleSetRecord", rules, IgnoreUnknown, func(b []byte) (string, error) {
			rs, err := DecodeRuleSetRecord(b)
			return fmt.Sprint(rs.Version), err
		}, `"version"`, `9`},
		{"DecodeProfile", profile, RejectUnknown, func(b []byte) (string, error) {
			p, err := DecodeProfile(b)
			return p.HomeCountry, err
		}, `"home_country"`, `"FR"`},
		{"DecodeProfileRecord", profile, IgnoreUnknown, func(b []byte) (string, error) {
			p, err := DecodeProfileRecord(b)
			return p.HomeCountry, err
		}, `"home_country"`, `"FR"`},
	}
	// insert adds members right after the opening brace.
	insert := func(b []byte, members string) []byte {
		return append([]byte("{"+members+","), b[1:]...)
	}
	for _, d := range decoders {
		t.Run(d.name, func(t *testing.T) {
			want, err := d.decode(d.in)
			if err != nil {
				t.Fatalf("decode the fixture: %v", err)
			}
			name := strings.Trim(d.key, `"`)
			upper := `"` + strings.ToUpper(name[:1]) + name[1:] + `"`

			// A duplicate, spelled alike or with an escape, is refused
			// with an error naming the key.
			for _, dup := range []string{d.key, strings.Replace(d.key, name[:1], `\u00`+fmt.Sprintf("%x", name[0]), 1)} {
				_, err := d.decode(insert(d.in, dup+":"+d.other))
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Errors[0].Pointer != "/"+name || !strings.Contains(ve.Errors[0].Detail, "duplicate key") {
					t.Errorf("duplicate %s: error %v, want a duplicate-key error at /%s", dup, err, name)
				}
			}

			// A key in another case is not the field.
			got, err := d.decode(insert(d.in, upper+":"+d.other))
			switch d.unknown {
			case RejectUnknown:
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Errors[0].Pointer != "/"+strings.Trim(upper, `"`) ||
					!strings.Contains(ve.Errors[0].Detail, "case-sensitive") {
					t.Errorf("key %s: error %v, want an unknown-field error naming it", upper, err)
				}
			case IgnoreUnknown:
				if err != nil || got != want {
					t.Errorf("key %s: got %q, %v; want it ignored: %q", upper, got, err, want)
				}
			}

			// A field a newer release might add.
			got, err = d.decode(insert(d.in, `"added_later":{"x":[1,"y"]},"flag":true`))
			switch d.unknown {
			case RejectUnknown:
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Errors[0].Pointer != "/added_later" {
					t.Errorf("unknown field: error %v, want one at /added_later", err)
				}
			case IgnoreUnknown:
				if err != nil || got != want {
					t.Errorf("unknown field: got %q, %v; want %q", got, err, want)
				}
			}
		})
	}
}

func TestKeysNested(t *testing.T) {
	sc := Scored{Transaction: mustDecode(t, validJSON), Decision: DecisionApprove,
		Reasons: []Reason{{Code: "A", Source: SourceRule, Weight: 0.1}}}
	b, err := sc.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, pointer string
	}{
		{"transaction", `"card_id":`, `"card_id":"x","card_id":`, "/transaction/card_id"},
		{"features", `"count_1m":`, `"count_1m":5,"count_1m":`, "/features/count_1m"},
		{"reasons", `"code":`, `"code":"B","code":`, "/reasons/0/code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(string(b), tc.old, tc.new, 1)
			_, err := DecodeScored([]byte(in))
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Errors[0].Pointer != tc.pointer {
				t.Fatalf("%s: error %v, want a duplicate at %s", in, err, tc.pointer)
			}
		})
	}
	// Case variants nested deep are unknown keys, not the fields.
	in := strings.Replace(string(b), `"count_1m":0`, `"count_1m":0,"Count_1m":9`, 1)
	in = strings.Replace(in, `"card_id":"`, `"CARD_ID":"evil","card_id":"`, 1)
	got, err := DecodeScored([]byte(in))
	if err != nil {
		t.Fatalf("%s: %v", in, err)
	}
	if got.Features.Count1m != 0 || got.Transaction.CardID != sc.Transaction.CardID {
		t.Fatalf("case variants were read as fields: count_1m %d, card_id %q", got.Features.Count1m, got.Transaction.CardID)
	}
}
