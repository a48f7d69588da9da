package event

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const validJSON = `{"transaction_id":"tx-1","card_id":"card_42","amount_minor":1299,"currency":"USD",
"merchant_id":"m-9","merchant_category":"5411","merchant_country":"US","channel":"card_present",
"lat":40.7,"lon":-74.0,"ip":"203.0.113.7","event_time":"2026-11-22T11:59:00Z"}`

func TestDecodeValidTransaction(t *testing.T) {
	tx, err := DecodeTransaction([]byte(validJSON))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := tx.Validate(now, 5*time.Minute); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if tx.AmountMinor != 1299 || tx.CardID != "card_42" || *tx.Lat != 40.7 {
		t.Fatalf("decoded wrong values: %+v", tx)
	}
}

func TestTransactionValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(string) string
		pointer string
		detail  string
	}{
		{"missing id", repl(`"transaction_id":"tx-1",`, ``), "/transaction_id", "required"},
		{"bad id charset", repl(`"tx-1"`, `"tx 1"`), "/transaction_id", "may contain only"},
		{"long card id", repl(`"card_42"`, `"`+strings.Repeat("c", 65)+`"`), "/card_id", "at most 64"},
		{"zero amount", repl(`1299`, `0`), "/amount_minor", "positive"},
		{"negative amount", repl(`1299`, `-5`), "/amount_minor", "positive"},
		{"huge amount", repl(`1299`, `1000000000001`), "/amount_minor", "at most"},
		{"fractional amount", repl(`1299`, `12.99`), "/amount_minor", "must be an integer"},
		{"amount as string", repl(`1299`, `"1299"`), "/amount_minor", "must be an integer"},
		{"currency", repl(`"USD"`, `"usd"`), "/currency", "ISO 4217"},
		{"unknown currency", repl(`"USD"`, `"XYZ"`), "/currency", "ISO 4217"},
		{"mcc letters", repl(`"5411"`, `"54a1"`), "/merchant_category", "4-digit"},
		{"mcc short", repl(`"5411"`, `"541"`), "/merchant_category", "4-digit"},
		{"country", repl(`"US"`, `"XX"`), "/merchant_country", "ISO 3166"},
		{"channel", repl(`"card_present"`, `"fax"`), "/channel", "one of"},
		{"lat range", repl(`40.7`, `91`), "/lat", "between -90 and 90"},
		{"lon range", repl(`-74.0`, `-181`), "/lon", "between -180 and 180"},
		{"lat without lon", repl(`"lon":-74.0,`, ``), "/lon", "required when lat"},
		{"ip", repl(`"203.0.113.7"`, `"999.1.1.1"`), "/ip", "IPv4 or IPv6"},
		{"future event time", repl(`2026-11-22T11:59:00Z`, `2026-11-22T12:10:00Z`), "/event_time", "in the future"},
		{"missing event time", repl(`,"event_time":"2026-11-22T11:59:00Z"`, ``), "/event_time", "required"},
		{"bad event time", repl(`2026-11-22T11:59:00Z`, `yesterday`), "/event_time", "RFC 3339"},
		{"ancient event time", repl(`2026-11-22T11:59:00Z`, `1999-12-31T23:59:59Z`), "/event_time", "years 2000"},
		{"unknown field", repl(`"currency"`, `"colour":"red","currency"`), "/colour", "unknown field"},
		{"wrong schema", repl(`{`, `{"schema":"fraudstream.scored.v1",`), "/schema", "must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := DecodeTransaction([]byte(tc.mutate(validJSON)))
			if err == nil {
				err = tx.Validate(now, 5*time.Minute)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a *ValidationError, got %v", err)
			}
			for _, fe := range ve.Errors {
				if fe.Pointer == tc.pointer && strings.Contains(fe.Detail, tc.detail) {
					return
				}
			}
			t.Fatalf("want error at %s containing %q, got %v", tc.pointer, tc.detail, ve.Errors)
		})
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	var tx Transaction
	err := tx.Validate(now, time.Minute)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := []string{"/transaction_id", "/card_id", "/merchant_id", "/amount_minor", "/currency",
		"/merchant_category", "/merchant_country", "/channel", "/event_time"}
	got := map[string]bool{}
	for _, fe := range ve.Errors {
		got[fe.Pointer] = true
	}
	for _, p := range want {
		if !got[p] {
			t.Errorf("no error reported for %s (got %v)", p, ve.Errors)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"transaction_id":"a"} {"x":1}`, `nul`} {
		_, err := DecodeTransaction([]byte(in))
		var ve *ValidationError
		if err == nil || (!errors.Is(err, ErrMalformed) && !errors.As(err, &ve)) {
			t.Errorf("%q: want ErrMalformed or a field error, got %v", in, err)
		}
	}
	if _, err := DecodeTransaction([]byte(`{"transaction_id":"a"} {"x":1}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing data: want ErrMalformed, got %v", err)
	}
}

func TestEncodeIsDeterministicAndRoundTrips(t *testing.T) {
	tx, err := DecodeTransaction([]byte(validJSON))
	if err != nil {
		t.Fatal(err)
	}
	tx.IngestTime = now
	a, err := tx.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tx.Encode()
	if string(a) != string(b) {
		t.Fatal("two encodings differ")
	}
	if !strings.Contains(string(a), `"schema":"`+SchemaTransaction+`"`) {
		t.Fatalf("encoding lacks schema: %s", a)
	}
	back, err := DecodeTransaction(a)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := back.Encode()
	if string(c) != string(a) {
		t.Fatalf("round trip changed the bytes:\n%s\n%s", a, c)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"a": true, "A-z_0.9:x": true, "": false, "a b": false,
		"é": false, strings.Repeat("x", 64): true, strings.Repeat("x", 65): false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func repl(old, new string) func(string) string {
	return func(s string) string {
		if !strings.Contains(s, old) {
			panic("test fixture lacks " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
}

func FuzzDecodeTransaction(f *testing.F) {
	f.Add([]byte(validJSON))
	f.Add([]byte(`{"transaction_id":"a","amount_minor":1e400}`))
	f.Add([]byte(`{"lat":null,"lon":1}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := DecodeTransaction(b)
		if err != nil {
			var ve *ValidationError
			if !errors.Is(err, ErrMalformed) && !errors.As(err, &ve) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
			return
		}
		if tx.Validate(now, time.Hour) != nil {
			return
		}
		// A valid transaction must survive an encode/decode round trip
		// unchanged and stay valid.
		enc, err := tx.Encode()
		if err != nil {
			t.Fatalf("encode a valid transaction: %v", err)
		}
		back, err := DecodeTransaction(enc)
		if err != nil {
			t.Fatalf("decode own encoding %s: %v", enc, err)
		}
		if err := back.Validate(now, time.Hour); err != nil {
			t.Fatalf("own encoding no longer valid: %v", err)
		}
		enc2, _ := back.Encode()
		if string(enc) != string(enc2) {
			t.Fatalf("round trip not stable:\n%s\n%s", enc, enc2)
		}
	})
}
