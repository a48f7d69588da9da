package event

import (
	"net/netip"
	"reflect"
	"time"
)

// Channels a card payment can come through.
const (
	ChannelCardPresent = "card_present"
	ChannelEcommerce   = "ecommerce"
	ChannelATM         = "atm"
	ChannelMOTO        = "moto"
)

// Transaction is one card payment: the body of POST /v1/transactions and the
// value of a raw-transactions record, keyed by CardID.
type Transaction struct {
	Schema           string    `json:"schema,omitempty"`
	TransactionID    string    `json:"transaction_id"`
	CardID           string    `json:"card_id"`
	AccountID        string    `json:"account_id,omitempty"`
	AmountMinor      int64     `json:"amount_minor"`
	Currency         string    `json:"currency"`
	MerchantID       string    `json:"merchant_id"`
	MerchantCategory string    `json:"merchant_category"`
	MerchantCountry  string    `json:"merchant_country"`
	Channel          string    `json:"channel"`
	Lat              *float64  `json:"lat,omitempty"`
	Lon              *float64  `json:"lon,omitempty"`
	DeviceID         string    `json:"device_id,omitempty"`
	IP               string    `json:"ip,omitempty"`
	EventTime        time.Time `json:"event_time"`
	IngestTime       time.Time `json:"ingest_time,omitzero"`
}

// DecodeTransaction decodes one JSON transaction strictly, as the HTTP API
// takes it: unknown fields (also a known name in another letter case),
// duplicate keys and wrong types are a *ValidationError, anything
// unparsable wraps ErrMalformed. It does not validate values; call
// Validate for that.
func DecodeTransaction(b []byte) (Transaction, error) {
	var t Transaction
	if decodeTransactionFast(bytesString(b), &t, false, RejectUnknown) {
		return t, nil
	}
	return decodeTransactionRef(b, RejectUnknown)
}

// DecodeTransactionString is DecodeTransaction for JSON held in a string,
// without copying it: the string fields of the transaction are substrings of
// s (except common constants such as currencies and channels), so they keep
// s alive as long as they are used. Decoding many transactions from one
// large string, such as a request body, costs no allocation per field.
func DecodeTransactionString(s string) (Transaction, error) {
	var t Transaction
	if decodeTransactionFast(s, &t, true, RejectUnknown) {
		return t, nil
	}
	return decodeTransactionRef([]byte(s), RejectUnknown)
}

// DecodeTransactionRecord decodes a raw-transactions record value: as
// DecodeTransaction, except that unknown fields are ignored, so that
// records of a newer producer still decode (IgnoreUnknown). Keys are
// exact-case and duplicates are refused all the same.
func DecodeTransactionRecord(b []byte) (Transaction, error) {
	var t Transaction
	if decodeTransactionFast(bytesString(b), &t, false, IgnoreUnknown) {
		return t, nil
	}
	return decodeTransactionRef(b, IgnoreUnknown)
}

// decodeTransactionRef is the decoders above without the fast path: the
// reference the fast decoder is tested against, and the path that decides
// and reports every error.
func decodeTransactionRef(b []byte, unknown Unknown) (Transaction, error) {
	var t Transaction
	if err := decodeKeysChecked(b, &t, transactionType, unknown); err != nil {
		return Transaction{}, err
	}
	return t, nil
}

var transactionType = reflect.TypeFor[Transaction]()

// Encode returns the JSON form of t with its schema set.
func (t Transaction) Encode() ([]byte, error) {
	t.Schema = SchemaTransaction
	return t.AppendEncode(make([]byte, 0, transactionSize(&t)))
}

// AppendEncode appends the JSON form of t, as Encode returns it, to b.
func (t Transaction) AppendEncode(b []byte) ([]byte, error) {
	t.Schema = SchemaTransaction
	return t.AppendJSON(b)
}

// Validate checks every field of t and reports all problems at once. A zero
// now skips the future-skew check (the scorer re-validates replayed records
// whose event times were checked at ingest); otherwise an event time more
// than maxSkew after now is refused.
func (t *Transaction) Validate(now time.Time, maxSkew time.Duration) error {
	ve := &ValidationError{}
	checkSchema(ve, t.Schema, SchemaTransaction)
	checkID(ve, "/transaction_id", t.TransactionID, true)
	checkID(ve, "/card_id", t.CardID, true)
	checkID(ve, "/account_id", t.AccountID, false)
	checkID(ve, "/merchant_id", t.MerchantID, true)
	switch {
	case t.AmountMinor <= 0:
		ve.add("/amount_minor", "must be a positive integer amount in minor units (cents)")
	case t.AmountMinor > MaxAmountMinor:
		ve.add("/amount_minor", "must be at most %d", int64(MaxAmountMinor))
	}
	if _, ok := currencies[t.Currency]; !ok {
		ve.add("/currency", "must be an ISO 4217 currency code such as USD, got %q", t.Currency)
	}
	if !isMCC(t.MerchantCategory) {
		ve.add("/merchant_category", "must be a 4-digit merchant category code, got %q", t.MerchantCategory)
	}
	if _, ok := countries[t.MerchantCountry]; !ok {
		ve.add("/merchant_country", "must be an ISO 3166-1 alpha-2 country code such as US, got %q", t.MerchantCountry)
	}
	switch t.Channel {
	case ChannelCardPresent, ChannelEcommerce, ChannelATM, ChannelMOTO:
	default:
		ve.add("/channel", "must be one of card_present, ecommerce, atm, moto, got %q", t.Channel)
	}
	switch {
	case (t.Lat == nil) != (t.Lon == nil):
		if t.Lat == nil {
			ve.add("/lat", "is required when lon is given")
		} else {
			ve.add("/lon", "is required when lat is given")
		}
	case t.Lat != nil:
		if !(*t.Lat >= -90 && *t.Lat <= 90) {
			ve.add("/lat", "must be between -90 and 90 degrees")
		}
		if !(*t.Lon >= -180 && *t.Lon <= 180) {
			ve.add("/lon", "must be between -180 and 180 degrees")
		}
	}
	checkID(ve, "/device_id", t.DeviceID, false)
	if t.IP != "" {
		if _, err := netip.ParseAddr(t.IP); err != nil {
			ve.add("/ip", "must be an IPv4 or IPv6 address, got %q", t.IP)
		}
	}
	switch {
	case t.EventTime.IsZero():
		ve.add("/event_time", "is required (RFC 3339, when the payment happened)")
	case t.EventTime.Year() < 2000 || t.EventTime.Year() > 9999:
		ve.add("/event_time", "must be between the years 2000 and 9999")
	case !now.IsZero() && t.EventTime.After(now.Add(maxSkew)):
		ve.add("/event_time", "is %s in the future; at most %s of clock skew is allowed",
			t.EventTime.Sub(now).Round(time.Millisecond), maxSkew)
	}
	return ve.err()
}

func checkID(ve *ValidationError, pointer, id string, required bool) {
	if id == "" {
		if required {
			ve.add(pointer, "is required")
		}
		return
	}
	if len(id) > MaxIDLen {
		ve.add(pointer, "must be at most %d characters, got %d", MaxIDLen, len(id))
		return
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			ve.add(pointer, "may contain only A-Z a-z 0-9 _ - . : (found %q at position %d)", rune(id[i]), i)
			return
		}
	}
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == ':'
}

// ValidID reports whether s is a valid transaction or card identifier.
func ValidID(s string) bool {
	ve := &ValidationError{}
	checkID(ve, "", s, true)
	return len(ve.Errors) == 0
}

func isMCC(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
