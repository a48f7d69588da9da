package event

import "math"

// Reference exchange rates, for comparing amounts across currencies in
// features and rule thresholds ("more than 200 US dollars"), never for
// accounting: fixed, approximate mid-market rates, so that a replay scores
// the same as the first run. An amount in a currency without a rate here
// counts as if it were in US dollars.
//
// Each entry is the currency's minor units per US cent: the rate in units
// per dollar scaled by the currency's ISO 4217 exponent (JPY has no minor
// unit, so 150 yen per dollar is 1.5 per cent; BHD has three, so 0.376
// dinar per dollar is 3.76 fils per cent).
var minorPerUSCent = map[string]float64{
	"USD": 1, "EUR": 0.92, "GBP": 0.79, "CHF": 0.88, "JPY": 1.5, "CNY": 7.2,
	"HKD": 7.8, "SGD": 1.35, "AUD": 1.52, "NZD": 1.65, "CAD": 1.36, "MXN": 17,
	"BRL": 5, "ARS": 900, "CLP": 9.3, "COP": 4000, "PEN": 3.7,
	"INR": 83, "PKR": 280, "BDT": 110, "IDR": 15800, "MYR": 4.7, "THB": 36,
	"PHP": 56, "VND": 250, "KRW": 13.5, "TWD": 32, "ZAR": 18.5, "NGN": 1500,
	"KES": 130, "EGP": 48, "MAD": 10, "TRY": 32, "ILS": 3.7, "AED": 3.67,
	"SAR": 3.75, "QAR": 3.64, "KWD": 3.07, "BHD": 3.76, "OMR": 3.85,
	"JOD": 7.09, "SEK": 10.5, "NOK": 10.7, "DKK": 6.9, "PLN": 4, "CZK": 23,
	"HUF": 360, "RON": 4.6, "BGN": 1.8, "ISK": 1.38, "UAH": 41, "RUB": 92,
}

// AmountUSD converts amountMinor minor units of currency to US dollars at
// the reference rate (see minorPerUSCent); an unknown currency counts as
// US dollars.
func AmountUSD(amountMinor int64, currency string) float64 {
	return USCents(amountMinor, currency) / 100
}

// USCents is AmountUSD in US cents, rounded to a whole cent.
func USCents(amountMinor int64, currency string) float64 {
	r, ok := minorPerUSCent[currency]
	if !ok {
		r = 1
	}
	return math.Round(float64(amountMinor) / r)
}
