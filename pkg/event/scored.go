package event

import (
	"math"
	"time"
)

// Decisions a scored transaction can carry, in increasing severity.
const (
	DecisionApprove = "approve"
	DecisionReview  = "review"
	DecisionDecline = "decline"
)

// Sources of a reason.
const (
	SourceRule  = "rule"
	SourceModel = "model"
)

// Features are the per-card values computed at the transaction's event time
// t over the card's earlier transactions in partition order. Counts and sums
// cover the half-open interval (t − d, t]. Sums and amount_zscore are in US
// cents at the reference rates of AmountUSD, so a card paying in several
// currencies adds like with like.
type Features struct {
	Count1m              int64   `json:"count_1m"`
	Count10m             int64   `json:"count_10m"`
	Count1h              int64   `json:"count_1h"`
	Count24h             int64   `json:"count_24h"`
	Sum1h                int64   `json:"sum_1h"`
	Sum24h               int64   `json:"sum_24h"`
	DistinctMerchants1h  int64   `json:"distinct_merchants_1h"`
	DistinctCountries24h int64   `json:"distinct_countries_24h"`
	SmallCount10m        int64   `json:"small_count_10m"`
	SecsSincePrev        float64 `json:"secs_since_prev"`
	KmFromPrev           float64 `json:"km_from_prev"`
	KmhFromPrev          float64 `json:"kmh_from_prev"`
	// ArrivalKmh is the speed at which the card reached the place of this
	// in-person transaction (see the scorer's features.go): 0 without a
	// location, or where the card has been since its history began.
	ArrivalKmh   float64 `json:"arrival_kmh"`
	AmountZScore float64 `json:"amount_zscore"`
	// AmountRatio is the amount over the geometric mean of the card's
	// earlier amounts, both in US cents; 0 for the card's first amount.
	AmountRatio         float64 `json:"amount_ratio"`
	NewCountry          bool    `json:"new_country"`
	NewMerchant         bool    `json:"new_merchant"`
	HomeCountryMismatch bool    `json:"home_country_mismatch"`
	AccountAgeDays      float64 `json:"account_age_days"`
	RiskTier            int64   `json:"risk_tier"`
	ProfileMissing      bool    `json:"profile_missing"`

	// Long memory of the card (weeks, bounded; see docs/detection.md).
	// NewCountry and NewMerchant above are against it too: a country or
	// merchant the card has not used in that memory (new_country is false
	// for a card without history: it has no country to be new against).
	//
	// HistoryCount is how many earlier transactions the card's memory
	// holds, HistoryDays how long ago the first of them was.
	HistoryCount int64   `json:"history_count"`
	HistoryDays  float64 `json:"history_days"`
	// NewDevice and NewIP: a card with history, that has paid from other
	// devices (networks: the address's /24 or /48) for more than a day,
	// pays from one it first used less than a day ago. Never true for a
	// card without that history. DeviceKnown: the card first used this
	// device an hour or more ago (before the current burst).
	NewDevice   bool `json:"new_device"`
	NewIP       bool `json:"new_ip"`
	DeviceKnown bool `json:"device_known"`
	// Devices1h is how many different devices the card used in the last
	// hour, this one included.
	Devices1h int64 `json:"devices_1h"`
	// MerchantVisits is how often the card paid this merchant before;
	// RepeatMerchant10m says one of those was in the last 10 minutes.
	MerchantVisits    int64 `json:"merchant_visits"`
	RepeatMerchant10m bool  `json:"repeat_merchant_10m"`
	// MerchantDays is how long ago the card first paid this merchant.
	MerchantDays float64 `json:"merchant_days"`
	// DistinctMerchants10m counts the merchants of the card's earlier
	// transactions in the last 10 minutes.
	DistinctMerchants10m int64 `json:"distinct_merchants_10m"`
	// AmountRatioMCC is the amount over the card's usual amount in this
	// merchant category (geometric mean); 0 for a category it has not used.
	AmountRatioMCC float64 `json:"amount_ratio_mcc"`
	// ImpossibleArrival: arrival_kmh is faster than any journey (900 km/h).
	ImpossibleArrival bool `json:"impossible_arrival"`

	// Entity features: the entity-features table as of the state time
	// minus the join lag (docs/design/entities.md). DeviceCards24h and
	// IPCards24h are the distinct cards seen at the transaction's device
	// and IP in 24 hours, 0 while below the table's threshold.
	DeviceCards24h int64 `json:"device_cards_24h"`
	IPCards24h     int64 `json:"ip_cards_24h"`
	// VisitedCompromisedMerchant: the card paid, before this transaction
	// and within the card's merchant memory, at a merchant the table holds
	// as compromised.
	VisitedCompromisedMerchant bool `json:"visited_compromised_merchant"`
	// EntityStale: the table was not complete through the join time within
	// the scorer's wait, and the entity features are zero (the degraded
	// case in which a replay may differ).
	EntityStale bool `json:"entity_stale,omitempty"`
}

// Reason explains part of a score: a rule that matched or a model feature
// that contributed strongly.
type Reason struct {
	Code   string  `json:"code"`
	Source string  `json:"source"`
	Weight float64 `json:"weight"`
	Detail string  `json:"detail,omitempty"`
	Shadow bool    `json:"shadow,omitempty"`
}

// Scored is a transaction with its features, score and decision: the value of
// a scored-transactions record, keyed by card_id.
type Scored struct {
	Schema         string      `json:"schema"`
	Transaction    Transaction `json:"transaction"`
	Features       Features    `json:"features"`
	Score          float64     `json:"score"`
	Decision       string      `json:"decision"`
	Reasons        []Reason    `json:"reasons"`
	RuleSetVersion int64       `json:"rule_set_version"`
	ModelVersion   string      `json:"model_version"`
	Late           bool        `json:"late"`
	Watermark      time.Time   `json:"watermark,omitzero"`
	Partition      int32       `json:"partition"`
	Offset         int64       `json:"offset"`

	// ScoredAt is when the scorer produced the record. It travels in the
	// HeaderScoredAt header, never in the value (see the package comment).
	ScoredAt time.Time `json:"-"`
}

// Encode returns the JSON form of s with its schema set. It fails only for a
// non-finite score or feature, which is a scorer bug.
func (s Scored) Encode() ([]byte, error) {
	return s.AppendEncode(make([]byte, 0, s.SizeHint()))
}

// AppendEncode appends the JSON form of s, as Encode returns it, to b. On
// an error b is returned unchanged.
func (s Scored) AppendEncode(b []byte) ([]byte, error) {
	s.Schema = SchemaScored
	if s.Reasons == nil {
		s.Reasons = []Reason{}
	}
	if out, ok := appendScored(b, &s); ok {
		return out, nil
	}
	return appendMarshal(b, s)
}

// SizeHint is the usual length of s's JSON form, to size a buffer for
// AppendEncode; longer forms are possible (escaped strings, long numbers).
func (s *Scored) SizeHint() int { return scoredSize(s) }

// DecodeScored decodes and validates a scored-transactions record value.
// Unknown fields are ignored, so that records of a newer scorer still
// decode (IgnoreUnknown); keys are exact-case and duplicates are refused.
func DecodeScored(b []byte) (Scored, error) {
	var s Scored
	if err := decodeCompat(b, &s); err != nil {
		return Scored{}, err
	}
	return s, s.Validate()
}

// Validate checks the invariants every scored record keeps.
func (s *Scored) Validate() error {
	ve := &ValidationError{}
	checkSchema(ve, s.Schema, SchemaScored)
	if err := s.Transaction.Validate(time.Time{}, 0); err != nil {
		for _, fe := range err.(*ValidationError).Errors {
			ve.add("/transaction"+fe.Pointer, "%s", fe.Detail)
		}
	}
	if !(s.Score >= 0 && s.Score <= 1) || math.IsNaN(s.Score) {
		ve.add("/score", "must be between 0 and 1")
	}
	switch s.Decision {
	case DecisionApprove, DecisionReview, DecisionDecline:
	default:
		ve.add("/decision", "must be approve, review or decline, got %q", s.Decision)
	}
	if s.Partition < 0 {
		ve.add("/partition", "must not be negative")
	}
	if s.Offset < 0 {
		ve.add("/offset", "must not be negative")
	}
	return ve.err()
}
