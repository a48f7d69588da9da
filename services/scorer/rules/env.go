package rules

import (
	"slices"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Env is what a rule expression, and the model, see of one transaction:
// every feature of event.Features under its JSON name plus a few fields of
// the transaction itself. It is a struct rather than a map so that expr
// type-checks expressions against it at load time, and so that building it
// per transaction costs no allocation.
//
// Counts, sums and amounts are Go ints (expr's integer type, 64 bits on the
// platforms we run on), so that "count_1m >= 5" compares without
// conversion. Amounts are minor units of the transaction's own currency.
type Env struct {
	// Features, as computed by the scorer at the transaction's event time.
	Count1m              int     `expr:"count_1m"`
	Count10m             int     `expr:"count_10m"`
	Count1h              int     `expr:"count_1h"`
	Count24h             int     `expr:"count_24h"`
	Sum1h                int     `expr:"sum_1h"`
	Sum24h               int     `expr:"sum_24h"`
	DistinctMerchants1h  int     `expr:"distinct_merchants_1h"`
	DistinctCountries24h int     `expr:"distinct_countries_24h"`
	SmallCount10m        int     `expr:"small_count_10m"`
	SecsSincePrev        float64 `expr:"secs_since_prev"`
	KmFromPrev           float64 `expr:"km_from_prev"`
	KmhFromPrev          float64 `expr:"kmh_from_prev"`
	ArrivalKmh           float64 `expr:"arrival_kmh"`
	AmountZScore         float64 `expr:"amount_zscore"`
	AmountRatio          float64 `expr:"amount_ratio"`
	NewCountry           bool    `expr:"new_country"`
	NewMerchant          bool    `expr:"new_merchant"`
	HomeCountryMismatch  bool    `expr:"home_country_mismatch"`
	AccountAgeDays       float64 `expr:"account_age_days"`
	RiskTier             int     `expr:"risk_tier"`
	ProfileMissing       bool    `expr:"profile_missing"`
	HistoryCount         int     `expr:"history_count"`
	HistoryDays          float64 `expr:"history_days"`
	NewDevice            bool    `expr:"new_device"`
	NewIP                bool    `expr:"new_ip"`
	DeviceKnown          bool    `expr:"device_known"`
	MerchantDays         float64 `expr:"merchant_days"`
	Devices1h            int     `expr:"devices_1h"`
	MerchantVisits       int     `expr:"merchant_visits"`
	RepeatMerchant10m    bool    `expr:"repeat_merchant_10m"`
	DistinctMerchants10m int     `expr:"distinct_merchants_10m"`
	AmountRatioMCC       float64 `expr:"amount_ratio_mcc"`
	ImpossibleArrival    bool    `expr:"impossible_arrival"`
	// Entity features (docs/design/entities.md).
	DeviceCards24h             int  `expr:"device_cards_24h"`
	IPCards24h                 int  `expr:"ip_cards_24h"`
	VisitedCompromisedMerchant bool `expr:"visited_compromised_merchant"`
	EntityStale                bool `expr:"entity_stale"`

	// Transaction fields.
	AmountMinor int `expr:"amount_minor"`
	// AmountUSD is the amount in US dollars at the fixed reference rates
	// of event.AmountUSD: what thresholds should use, since amount_minor
	// is in the transaction's own currency.
	AmountUSD        float64 `expr:"amount_usd"`
	Currency         string  `expr:"currency"`
	Channel          string  `expr:"channel"`           // card_present, ecommerce, atm, moto
	MerchantCategory string  `expr:"merchant_category"` // 4-digit MCC
	MerchantCountry  string  `expr:"merchant_country"`
	// Ecommerce is channel == "ecommerce", as a number the model can read.
	Ecommerce bool `expr:"ecommerce"`
	// HighRiskMCC marks merchant categories that card fraud favours
	// (HighRiskMCCs): digital goods, electronics, jewelry, quasi-cash,
	// money transfer, gambling.
	HighRiskMCC bool `expr:"high_risk_mcc"`
	// HourOfDay is the UTC hour (0–23) of the event time: the cardholder's
	// local time is not known, and the wall clock must not leak in.
	HourOfDay int `expr:"hour_of_day"`
}

// NewEnv returns the environment of transaction tx with features f. It is
// the one place that turns a transaction into the values that rules and
// model read, so the scorer and offline training (which replays labeled
// transactions through the scorer's feature code and then through NewEnv)
// cannot disagree on them.
//
// Set.Evaluate makes its env argument escape to the heap, so an Env in a
// local variable costs one allocation per transaction; keep one Env per
// partition task and refill it with Fill instead.
func NewEnv(tx *event.Transaction, f *event.Features) Env {
	var e Env
	e.Fill(tx, f)
	return e
}

// Fill overwrites e with the environment of tx and f (see NewEnv).
func (e *Env) Fill(tx *event.Transaction, f *event.Features) {
	*e = Env{
		Count1m:              int(f.Count1m),
		Count10m:             int(f.Count10m),
		Count1h:              int(f.Count1h),
		Count24h:             int(f.Count24h),
		Sum1h:                int(f.Sum1h),
		Sum24h:               int(f.Sum24h),
		DistinctMerchants1h:  int(f.DistinctMerchants1h),
		DistinctCountries24h: int(f.DistinctCountries24h),
		SmallCount10m:        int(f.SmallCount10m),
		SecsSincePrev:        f.SecsSincePrev,
		KmFromPrev:           f.KmFromPrev,
		KmhFromPrev:          f.KmhFromPrev,
		ArrivalKmh:           f.ArrivalKmh,
		AmountZScore:         f.AmountZScore,
		AmountRatio:          f.AmountRatio,
		NewCountry:           f.NewCountry,
		NewMerchant:          f.NewMerchant,
		HomeCountryMismatch:  f.HomeCountryMismatch,
		AccountAgeDays:       f.AccountAgeDays,
		RiskTier:             int(f.RiskTier),
		ProfileMissing:       f.ProfileMissing,
		HistoryCount:         int(f.HistoryCount),
		HistoryDays:          f.HistoryDays,
		NewDevice:            f.NewDevice,
		NewIP:                f.NewIP,
		DeviceKnown:          f.DeviceKnown,
		MerchantDays:         f.MerchantDays,
		Devices1h:            int(f.Devices1h),
		MerchantVisits:       int(f.MerchantVisits),
		RepeatMerchant10m:    f.RepeatMerchant10m,
		DistinctMerchants10m: int(f.DistinctMerchants10m),
		AmountRatioMCC:       f.AmountRatioMCC,
		ImpossibleArrival:    f.ImpossibleArrival,

		DeviceCards24h:             int(f.DeviceCards24h),
		IPCards24h:                 int(f.IPCards24h),
		VisitedCompromisedMerchant: f.VisitedCompromisedMerchant,
		EntityStale:                f.EntityStale,

		AmountMinor:      int(tx.AmountMinor),
		AmountUSD:        event.AmountUSD(tx.AmountMinor, tx.Currency),
		Currency:         tx.Currency,
		Channel:          tx.Channel,
		MerchantCategory: tx.MerchantCategory,
		MerchantCountry:  tx.MerchantCountry,
		Ecommerce:        tx.Channel == event.ChannelEcommerce,
		HighRiskMCC:      slices.Contains(HighRiskMCCs, tx.MerchantCategory),
		HourOfDay:        tx.EventTime.UTC().Hour(),
	}
}

// HighRiskMCCs are the merchant categories of high_risk_mcc: digital goods
// (5815–5818), computer and electronics stores (5045, 5732), jewelry
// (5944), quasi-cash and money orders (6051), wire transfers (4829),
// gambling (7995).
var HighRiskMCCs = []string{"4829", "5045", "5732", "5815", "5816", "5817", "5818", "5944", "6051", "7995"}

// kind is the type of a variable of Env as the evaluator sees it.
type kind uint8

const (
	kindInvalid kind = iota
	kindInt
	kindFloat
	kindBool
	kindString
)

// variable is one field of Env with a typed accessor. The table below is
// the generated-by-hand switch that replaces reflection in the hot path; a
// test checks it against Env's expr tags so the two cannot drift.
type variable struct {
	name string
	kind kind
	i    func(*Env) int
	f    func(*Env) float64
	b    func(*Env) bool
	s    func(*Env) string
}

var variables = []variable{
	{name: "count_1m", kind: kindInt, i: func(e *Env) int { return e.Count1m }},
	{name: "count_10m", kind: kindInt, i: func(e *Env) int { return e.Count10m }},
	{name: "count_1h", kind: kindInt, i: func(e *Env) int { return e.Count1h }},
	{name: "count_24h", kind: kindInt, i: func(e *Env) int { return e.Count24h }},
	{name: "sum_1h", kind: kindInt, i: func(e *Env) int { return e.Sum1h }},
	{name: "sum_24h", kind: kindInt, i: func(e *Env) int { return e.Sum24h }},
	{name: "distinct_merchants_1h", kind: kindInt, i: func(e *Env) int { return e.DistinctMerchants1h }},
	{name: "distinct_countries_24h", kind: kindInt, i: func(e *Env) int { return e.DistinctCountries24h }},
	{name: "small_count_10m", kind: kindInt, i: func(e *Env) int { return e.SmallCount10m }},
	{name: "secs_since_prev", kind: kindFloat, f: func(e *Env) float64 { return e.SecsSincePrev }},
	{name: "km_from_prev", kind: kindFloat, f: func(e *Env) float64 { return e.KmFromPrev }},
	{name: "kmh_from_prev", kind: kindFloat, f: func(e *Env) float64 { return e.KmhFromPrev }},
	{name: "arrival_kmh", kind: kindFloat, f: func(e *Env) float64 { return e.ArrivalKmh }},
	{name: "amount_zscore", kind: kindFloat, f: func(e *Env) float64 { return e.AmountZScore }},
	{name: "amount_ratio", kind: kindFloat, f: func(e *Env) float64 { return e.AmountRatio }},
	{name: "new_country", kind: kindBool, b: func(e *Env) bool { return e.NewCountry }},
	{name: "new_merchant", kind: kindBool, b: func(e *Env) bool { return e.NewMerchant }},
	{name: "home_country_mismatch", kind: kindBool, b: func(e *Env) bool { return e.HomeCountryMismatch }},
	{name: "account_age_days", kind: kindFloat, f: func(e *Env) float64 { return e.AccountAgeDays }},
	{name: "risk_tier", kind: kindInt, i: func(e *Env) int { return e.RiskTier }},
	{name: "profile_missing", kind: kindBool, b: func(e *Env) bool { return e.ProfileMissing }},
	{name: "history_count", kind: kindInt, i: func(e *Env) int { return e.HistoryCount }},
	{name: "history_days", kind: kindFloat, f: func(e *Env) float64 { return e.HistoryDays }},
	{name: "new_device", kind: kindBool, b: func(e *Env) bool { return e.NewDevice }},
	{name: "new_ip", kind: kindBool, b: func(e *Env) bool { return e.NewIP }},
	{name: "device_known", kind: kindBool, b: func(e *Env) bool { return e.DeviceKnown }},
	{name: "merchant_days", kind: kindFloat, f: func(e *Env) float64 { return e.MerchantDays }},
	{name: "devices_1h", kind: kindInt, i: func(e *Env) int { return e.Devices1h }},
	{name: "merchant_visits", kind: kindInt, i: func(e *Env) int { return e.MerchantVisits }},
	{name: "repeat_merchant_10m", kind: kindBool, b: func(e *Env) bool { return e.RepeatMerchant10m }},
	{name: "distinct_merchants_10m", kind: kindInt, i: func(e *Env) int { return e.DistinctMerchants10m }},
	{name: "amount_ratio_mcc", kind: kindFloat, f: func(e *Env) float64 { return e.AmountRatioMCC }},
	{name: "impossible_arrival", kind: kindBool, b: func(e *Env) bool { return e.ImpossibleArrival }},
	{name: "device_cards_24h", kind: kindInt, i: func(e *Env) int { return e.DeviceCards24h }},
	{name: "ip_cards_24h", kind: kindInt, i: func(e *Env) int { return e.IPCards24h }},
	{name: "visited_compromised_merchant", kind: kindBool, b: func(e *Env) bool { return e.VisitedCompromisedMerchant }},
	{name: "entity_stale", kind: kindBool, b: func(e *Env) bool { return e.EntityStale }},
	{name: "amount_minor", kind: kindInt, i: func(e *Env) int { return e.AmountMinor }},
	{name: "amount_usd", kind: kindFloat, f: func(e *Env) float64 { return e.AmountUSD }},
	{name: "currency", kind: kindString, s: func(e *Env) string { return e.Currency }},
	{name: "channel", kind: kindString, s: func(e *Env) string { return e.Channel }},
	{name: "merchant_category", kind: kindString, s: func(e *Env) string { return e.MerchantCategory }},
	{name: "merchant_country", kind: kindString, s: func(e *Env) string { return e.MerchantCountry }},
	{name: "ecommerce", kind: kindBool, b: func(e *Env) bool { return e.Ecommerce }},
	{name: "high_risk_mcc", kind: kindBool, b: func(e *Env) bool { return e.HighRiskMCC }},
	{name: "hour_of_day", kind: kindInt, i: func(e *Env) int { return e.HourOfDay }},
}

func lookupVariable(name string) (variable, bool) {
	for _, v := range variables {
		if v.name == name {
			return v, true
		}
	}
	return variable{}, false
}

// Numeric returns an accessor for the numeric value of the variable name:
// ints and floats as they are, booleans as 0 or 1. It is how the model
// reads the same values the rules read; resolve names once at load time,
// then call the accessor per transaction. ok is false for an unknown name
// and for string variables such as channel.
func Numeric(name string) (get func(*Env) float64, ok bool) {
	v, found := lookupVariable(name)
	if !found {
		return nil, false
	}
	switch v.kind {
	case kindInt:
		return func(e *Env) float64 { return float64(v.i(e)) }, true
	case kindFloat:
		return v.f, true
	case kindBool:
		return func(e *Env) float64 {
			if v.b(e) {
				return 1
			}
			return 0
		}, true
	}
	return nil, false
}

// NumericNames lists, sorted, the variables Numeric knows: what a model
// may use as a feature.
func NumericNames() []string {
	var names []string
	for _, v := range variables {
		if v.kind != kindString {
			names = append(names, v.name)
		}
	}
	slices.Sort(names)
	return names
}

// Names lists, sorted, every variable an expression may use.
func Names() []string {
	names := make([]string, len(variables))
	for i, v := range variables {
		names[i] = v.name
	}
	slices.Sort(names)
	return names
}
