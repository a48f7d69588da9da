package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// checkDecode compares, for input b and either handling of unknown keys,
// the fast decoder and the public decoder with the reference path,
// decodeTransactionRef:
//   - the fast decoder succeeds only where the reference does, with the
//     same value;
//   - DecodeTransaction (RejectUnknown) or DecodeTransactionRecord
//     (IgnoreUnknown) returns the reference's value, or an error of the
//     same class (ErrMalformed or *ValidationError) with the same pointers
//     and the same text.
//
// It returns whether the fast decoder handled b.
func checkDecode(t *testing.T, b []byte, unknown Unknown) (fast bool) {
	t.Helper()
	want, wantErr := decodeTransactionRef(b, unknown)
	var ft Transaction
	if decodeTransactionFast(string(b), &ft, false, unknown) {
		if wantErr != nil {
			t.Fatalf("%q: fast decoder accepts what the reference refuses: %v", b, wantErr)
		}
		if !reflect.DeepEqual(ft, want) {
			t.Fatalf("%q: fast decoder got\n%#v\nreference\n%#v", b, ft, want)
		}
		fast = true
	}
	decode := DecodeTransaction
	if unknown == IgnoreUnknown {
		decode = DecodeTransactionRecord
	}
	got, err := decode(b)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: decoder error %v, reference %v", b, err, wantErr)
	}
	if err == nil {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoder got\n%#v\nreference\n%#v", b, got, want)
		}
		return fast
	}
	if errors.Is(err, ErrMalformed) != errors.Is(wantErr, ErrMalformed) {
		t.Fatalf("%q: ErrMalformed: %v, reference: %v", b, err, wantErr)
	}
	var ve, wantVE *ValidationError
	if errors.As(err, &ve) != errors.As(wantErr, &wantVE) {
		t.Fatalf("%q: *ValidationError: %v, reference: %v", b, err, wantErr)
	}
	if ve != nil && !reflect.DeepEqual(ve.Errors, wantVE.Errors) {
		t.Fatalf("%q: field errors %v, reference %v", b, ve.Errors, wantVE.Errors)
	}
	if err.Error() != wantErr.Error() {
		t.Fatalf("%q: error %q, reference %q", b, err, wantErr)
	}
	return fast
}

// decodeCases are inputs around every rule the decoders follow. fast says
// whether the fast decoder is expected to handle the input itself under
// RejectUnknown, compat under IgnoreUnknown.
var decodeCases = []struct {
	in           string
	fast, compat bool
}{
	{validJSON, true, true},
	{`{}`, true, true},
	{" \t\r\n{ \t\r\n} \t\r\n", true, true},
	{`{"transaction_id":"a","transaction_id":"b"}`, false, false},                                // duplicate
	{`{"transaction_id":"a","transaction_id":null}`, false, false},                               // duplicate, even with null
	{`{"amount_minor":5,"amount_minor":null}`, false, false},                                     // duplicate
	{`{"transaction_id":"a","transaction\u005fid":"b"}`, false, false},                           // duplicate once unescaped
	{`{"lat":null,"lon":2,"lat":1}`, false, false},                                               // duplicate
	{`{"amount_minor":1,"Amount_Minor":2}`, false, true},                                         // the case: 1 or unknown
	{`{"Amount_Minor":2,"amount_minor":1}`, false, true},                                         // in either order
	{`{"AMOUNT_MINOR":2}`, false, true},                                                          // unknown: ignored or refused
	{`{"colour":1,"colour":2}`, false, false},                                                    // duplicate unknown key
	{`{"colour":{"a":1,"a":2}}`, false, false},                                                   // duplicate inside an unknown value
	{`{"colour":[1,{"x":"é"}],"card_id":"c"}`, false, false},                                     // unknown object value
	{`{"colour":"red","size":1.5,"ok":true,"n":null,"card_id":"c"}`, false, true},                // plain unknown values
	{`{"a":1,"b":2,"c":3,"d":4,"e":5}`, false, false},                                            // more unknown keys than fast tracks
	{`{"lat":1,"lon":null}`, true, true},                                                         // null clears a pointer
	{`{"lat":-0.0,"lon":1e-400}`, true, true},                                                    // -0 and underflow
	{`{"lat":1.5e3,"lon":-0}`, true, true},                                                       // exponent, negative zero
	{`{"lat":1e400}`, false, false},                                                              // out of range: type error
	{`{"lon":"1"}`, false, false},                                                                // string for a number
	{`{"amount_minor":-0}`, true, true},                                                          // ParseInt takes -0
	{`{"amount_minor":9223372036854775807}`, true, true},                                         // max int64
	{`{"amount_minor":9223372036854775808}`, false, false},                                       // overflow
	{`{"amount_minor":-9223372036854775809}`, false, false},                                      // overflow
	{`{"amount_minor":12.99}`, false, false},                                                     // fraction
	{`{"amount_minor":1e3}`, false, false},                                                       // exponent
	{`{"amount_minor":"1299"}`, false, false},                                                    // string
	{`{"amount_minor":01}`, false, false},                                                        // malformed number
	{`{"amount_minor":-}`, false, false},                                                         // malformed number
	{`{"amount_minor":1.}`, false, false},                                                        // malformed number
	{`{"amount_minor":true}`, false, false},                                                      // bool
	{`{"amount_minor":[1]}`, false, false},                                                       // array
	{`{"currency":{"a":1}}`, false, false},                                                       // object for a string
	{`{"currency":1}`, false, false},                                                             // number for a string
	{`{"currency":tru}`, false, false},                                                           // malformed literal
	{`{"currency":nul}`, false, false},                                                           // malformed literal
	{`{"currency":nullx}`, false, false},                                                         // malformed literal
	{`{"event_time":"2026-11-22T11:59:00.123+05:30"}`, true, true},                               // offset
	{`{"event_time":"2026-11-22T11:59:00Z","event_time":null}`, false, false},                    // duplicate
	{`{"event_time":"2026-11-22t11:59:00z"}`, false, false},                                      // lower case: refused
	{`{"event_time":"2026-11-22T11:59:00\u005a"}`, false, false},                                 // escapes: refused
	{`{"event_time":5,"colour":1}`, false, false},                                                // time error first
	{`{"colour":1,"event_time":5}`, false, false},                                                // time error wins anyway
	{`{"colour":1,"amount_minor":"x"}`, false, false},                                            // first saved error wins
	{`{"amount_minor":"x","colour":1}`, false, false},                                            // first saved error wins
	{`{"ingest_time":{}}`, false, false},                                                         // reported as /event_time
	{`{"ingest_time":"2026-11-22T11:59:00Z"}`, true, true},                                       // decodes; ingest refuses it
	{`{"TRANSACTION_ID":"a"}`, false, true},                                                      // case-insensitive match
	{`{"tranſaction_id":"a"}`, false, true},                                                      // Unicode folding (ſ → s)
	{`{"transaction\u005fid":"a"}`, false, false},                                                // escaped key
	{`{"transaction_id":"a\"b\u00e9\n"}`, false, false},                                          // escaped value
	{`{"transaction_id":"é日本"}`, true, true},                                                     // valid UTF-8
	{"{\"transaction_id\":\"\xff\"}", false, false},                                              // invalid UTF-8 → U+FFFD
	{"{\"transaction_id\":\"a\tb\"}", false, false},                                              // control character
	{`{"colour":"red"}`, false, true},                                                            // unknown field
	{`{"a.b":1}`, false, true},                                                                   // pointer /a/b
	{`{"\"":1}`, false, false},                                                                   // odd pointer
	{`{"transaction_id":"a",}`, false, false},                                                    // trailing comma
	{`{"transaction_id":"a" "card_id":"b"}`, false, false},                                       // missing comma
	{`{"transaction_id" "a"}`, false, false},                                                     // missing colon
	{`{"transaction_id":}`, false, false},                                                        // missing value
	{`{,}`, false, false},                                                                        // malformed
	{`{"transaction_id":"a"`, false, false},                                                      // truncated
	{`{"transaction_id":"a`, false, false},                                                       // truncated
	{`{"transaction_id":"a"} {"x":1}`, false, false},                                             // trailing data
	{`{}x`, false, false},                                                                        // trailing data
	{`{}}`, false, false},                                                                        // trailing data
	{`{"colour":1}x`, false, false},                                                              // field error beats trailing data
	{`null`, false, false},                                                                       // zero transaction
	{` null `, false, false},                                                                     // zero transaction
	{`nullx`, false, false},                                                                      // trailing data
	{`[]`, false, false},                                                                         // array: pointer ""
	{`[]x`, false, false},                                                                        // type error beats trailing data
	{`01`, false, false},                                                                         // number 0, then trailing data
	{`truex`, false, false},                                                                      // bool, then trailing data
	{`"x"`, false, false},                                                                        // string
	{``, false, false},                                                                           // empty
	{` `, false, false},                                                                          // empty
	{`{`, false, false},                                                                          // truncated
	{"\xef\xbb\xbf{}", false, false},                                                             // byte order mark
	{`{"colour":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false, false}, // depth limit
	{`{"colour":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, false, false}, // beyond it
}

func TestDecodeTransactionMatchesReference(t *testing.T) {
	for _, tc := range decodeCases {
		name := tc.in
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			if fast := checkDecode(t, []byte(tc.in), RejectUnknown); fast != tc.fast {
				t.Errorf("fast decoder handled it: %v, want %v", fast, tc.fast)
			}
			if fast := checkDecode(t, []byte(tc.in), IgnoreUnknown); fast != tc.compat {
				t.Errorf("fast decoder handled it under IgnoreUnknown: %v, want %v", fast, tc.compat)
			}
		})
	}
}

// TestDecodeTransactionFastOnOwnEncoding: whatever Encode writes for a
// valid transaction, the fast decoder reads without falling back.
func TestDecodeTransactionFastOnOwnEncoding(t *testing.T) {
	tx, _, _ := baseRecords()
	tx.AccountID, tx.DeviceID, tx.IngestTime = "acct:7", "dev.1", tx.EventTime.Add(1234567)
	for _, ch := range []string{ChannelCardPresent, ChannelEcommerce, ChannelATM, ChannelMOTO} {
		tx.Channel = ch
		b, err := tx.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !checkDecode(t, b, RejectUnknown) || !checkDecode(t, b, IgnoreUnknown) {
			t.Fatalf("fast decoder fell back on %s", b)
		}
	}
}

// FuzzDecodeTransactionFast is the differential test of the fast decoder
// against the reference path; see checkDecode.
func FuzzDecodeTransactionFast(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b, RejectUnknown)
		checkDecode(t, b, IgnoreUnknown)
	})
}

// checkDecodeString holds DecodeTransactionString to DecodeTransaction on
// input b (same value, same error), and checks that only the former shares
// its input: DecodeTransaction's strings survive b being overwritten.
func checkDecodeString(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	got, err := DecodeTransactionString(s)
	own := append([]byte(nil), b...)
	want, wantErr := DecodeTransaction(own)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%q: DecodeTransactionString error %v, DecodeTransaction %v", b, err, wantErr)
	}
	if err != nil {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: DecodeTransactionString got\n%#v\nDecodeTransaction\n%#v", b, got, want)
	}
	saved := want
	for i := range own {
		own[i] = 'x'
	}
	if !reflect.DeepEqual(want, saved) || !reflect.DeepEqual(got, saved) {
		t.Fatalf("%q: a decoded transaction changed with the input it came from", b)
	}
}

func TestDecodeTransactionString(t *testing.T) {
	for _, tc := range decodeCases {
		checkDecodeString(t, []byte(tc.in))
	}
	// The fields are substrings of the input, not copies.
	s := `{"transaction_id":"tx-1","card_id":"card-42","merchant_id":"m-9","currency":"EUR"}`
	tx, err := DecodeTransactionString(s)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(tx.CardID) != unsafe.StringData(s[strings.Index(s, "card-42"):]) {
		t.Errorf("card_id %q does not point into the input", tx.CardID)
	}
	if unsafe.StringData(tx.Currency) == unsafe.StringData(s[strings.Index(s, "EUR"):]) {
		t.Errorf("currency points into the input instead of the shared constant")
	}
}

// FuzzDecodeTransactionString: whatever the input, DecodeTransactionString
// answers as DecodeTransaction does; see checkDecodeString.
func FuzzDecodeTransactionString(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeString(t, b)
	})
}
