package event

import "testing"

func TestAmountUSD(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     float64
	}{
		{12345, "USD", 123.45},
		{9200, "EUR", 100},
		{15000, "JPY", 100},  // no minor unit: 150 yen per dollar
		{37600, "BHD", 100},  // three decimals
		{830000, "INR", 100}, // 83 rupees per dollar
		{5000, "XXX", 50},    // unknown: as if dollars
		{1, "USD", 0.01},
	}
	for _, tt := range tests {
		if got := AmountUSD(tt.minor, tt.currency); got != tt.want {
			t.Errorf("AmountUSD(%d, %s) = %v, want %v", tt.minor, tt.currency, got, tt.want)
		}
	}
	for c := range minorPerUSCent {
		if _, ok := currencies[c]; !ok {
			t.Errorf("rate for %s, which is not an ISO 4217 code", c)
		}
	}
}
