package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// checkDecode compares, for input b, the fast decoder and DecodeTransaction
// with the encoding/json reference, decodeTransactionRef:
//   - the fast decoder succeeds only where the reference does, with the
//     same value;
//   - DecodeTransaction returns the reference's value, or an error of the
//     same class (ErrMalformed or *ValidationError) with the same pointers
//     and the same text.
//
// It returns whether the fast decoder handled b.
func checkDecode(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	want, wantErr := decodeTransactionRef(b)
	var ft Transaction
	if decodeTransactionFast(string(b), &ft, false) {
		if wantErr != nil {
			t.Fatalf("%q: fast decoder accepts what encoding/json refuses: %v", b, wantErr)
		}
		if !reflect.DeepEqual(ft, want) {
			t.Fatalf("%q: fast decoder got\n%#v\nencoding/json\n%#v", b, ft, want)
		}
		fast = true
	}
	got, err := DecodeTransaction(b)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: DecodeTransaction error %v, reference %v", b, err, wantErr)
	}
	if err == nil {
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: DecodeTransaction got\n%#v\nreference\n%#v", b, got, want)
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

// decodeCases are inputs around every rule the strict decoder follows. fast
// says whether the fast decoder is expected to handle the input itself.
var decodeCases = []struct {
	in   string
	fast bool
}{
	{validJSON, true},
	{`{}`, true},
	{" \t\r\n{ \t\r\n} \t\r\n", true},
	{`{"transaction_id":"a","transaction_id":"b"}`, true},             // last wins
	{`{"transaction_id":"a","transaction_id":null}`, true},            // null keeps it
	{`{"amount_minor":5,"amount_minor":null}`, true},                  // null keeps it
	{`{"lat":1,"lat":null,"lon":2}`, true},                            // null clears a pointer
	{`{"lat":null,"lat":-0.0,"lon":1e-400}`, true},                    // -0 and underflow
	{`{"lat":1.5e3,"lon":-0}`, true},                                  // exponent, negative zero
	{`{"lat":1e400}`, false},                                          // out of range: type error
	{`{"lon":"1"}`, false},                                            // string for a number
	{`{"amount_minor":-0}`, true},                                     // ParseInt takes -0
	{`{"amount_minor":9223372036854775807}`, true},                    // max int64
	{`{"amount_minor":9223372036854775808}`, false},                   // overflow
	{`{"amount_minor":-9223372036854775809}`, false},                  // overflow
	{`{"amount_minor":12.99}`, false},                                 // fraction
	{`{"amount_minor":1e3}`, false},                                   // exponent
	{`{"amount_minor":"1299"}`, false},                                // string
	{`{"amount_minor":01}`, false},                                    // malformed number
	{`{"amount_minor":-}`, false},                                     // malformed number
	{`{"amount_minor":1.}`, false},                                    // malformed number
	{`{"amount_minor":true}`, false},                                  // bool
	{`{"amount_minor":[1]}`, false},                                   // array
	{`{"currency":{"a":1}}`, false},                                   // object for a string
	{`{"currency":1}`, false},                                         // number for a string
	{`{"currency":tru}`, false},                                       // malformed literal
	{`{"currency":nul}`, false},                                       // malformed literal
	{`{"currency":nullx}`, false},                                     // malformed literal
	{`{"event_time":"2026-11-22T11:59:00.123+05:30"}`, true},          // offset
	{`{"event_time":"2026-11-22T11:59:00Z","event_time":null}`, true}, // null keeps it
	{`{"event_time":"2026-11-22t11:59:00z"}`, false},                  // lower case: refused
	{`{"event_time":"2026-11-22T11:59:00\u005a"}`, false},             // escapes: refused
	{`{"event_time":5,"colour":1}`, false},                            // time error first
	{`{"colour":1,"event_time":5}`, false},                            // time error wins anyway
	{`{"colour":1,"amount_minor":"x"}`, false},                        // first saved error wins
	{`{"amount_minor":"x","colour":1}`, false},                        // first saved error wins
	{`{"ingest_time":{}}`, false},                                     // reported as /event_time
	{`{"ingest_time":"2026-11-22T11:59:00Z"}`, true},                  // decodes; ingest refuses it
	{`{"TRANSACTION_ID":"a"}`, false},                                 // case-insensitive match
	{`{"tranſaction_id":"a"}`, false},                                 // Unicode folding (ſ → s)
	{`{"transaction\u005fid":"a"}`, false},                            // escaped key
	{`{"transaction_id":"a\"b\u00e9\n"}`, false},                      // escaped value
	{`{"transaction_id":"é日本"}`, true},                                // valid UTF-8
	{"{\"transaction_id\":\"\xff\"}", false},                          // invalid UTF-8 → U+FFFD
	{"{\"transaction_id\":\"a\tb\"}", false},                          // control character
	{`{"colour":"red"}`, false},                                       // unknown field
	{`{"a.b":1}`, false},                                              // pointer /a/b
	{`{"\"":1}`, false},                                               // odd pointer
	{`{"transaction_id":"a",}`, false},                                // trailing comma
	{`{"transaction_id":"a" "card_id":"b"}`, false},                   // missing comma
	{`{"transaction_id" "a"}`, false},                                 // missing colon
	{`{"transaction_id":}`, false},                                    // missing value
	{`{,}`, false},                                                    // malformed
	{`{"transaction_id":"a"`, false},                                  // truncated
	{`{"transaction_id":"a`, false},                                   // truncated
	{`{"transaction_id":"a"} {"x":1}`, false},                         // trailing data
	{`{}x`, false},                                                    // trailing data
	{`{}}`, false},                                                    // trailing data
	{`{"colour":1}x`, false},                                          // field error beats trailing data
	{`null`, false},                                                   // zero transaction
	{` null `, false},                                                 // zero transaction
	{`nullx`, false},                                                  // trailing data
	{`[]`, false},                                                     // array: pointer ""
	{`[]x`, false},                                                    // type error beats trailing data
	{`01`, false},                                                     // number 0, then trailing data
	{`truex`, false},                                                  // bool, then trailing data
	{`"x"`, false},                                                    // string
	{``, false},                                                       // empty
	{` `, false},                                                      // empty
	{`{`, false},                                                      // truncated
	{"\xef\xbb\xbf{}", false},                                         // byte order mark
	{`{"colour":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false}, // depth limit
	{`{"colour":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, false}, // beyond it
}

func TestDecodeTransactionMatchesEncodingJSON(t *testing.T) {
	for _, tc := range decodeCases {
		name := tc.in
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			if fast := checkDecode(t, []byte(tc.in)); fast != tc.fast {
				t.Errorf("fast decoder handled it: %v, want %v", fast, tc.fast)
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
		if !checkDecode(t, b) {
			t.Fatalf("fast decoder fell back on %s", b)
		}
	}
}

// FuzzDecodeTransactionFast is the differential test of the fast decoder
// against encoding/json; see checkDecode.
func FuzzDecodeTransactionFast(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.in) < 1000 {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
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
