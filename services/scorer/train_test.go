package scorer

import (
	"math"
	"testing"
)

func TestScoreAtRate(t *testing.T) {
	asc := []float64{0.01, 0.02, 0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 0.95, 0.99}
	for _, tc := range []struct {
		rate, score, share float64
	}{
		{0.1, 0.99, 0.1},
		{0.3, 0.9, 0.3},
		{0.5, 0.5, 0.6},   // a tie at the threshold flags one more
		{0.01, 0.99, 0.1}, // at least one transaction
	} {
		s, share := scoreAtRate(asc, tc.rate)
		if s != tc.score || math.Abs(share-tc.share) > 1e-12 {
			t.Errorf("rate %v: score %v share %v, want %v and %v", tc.rate, s, share, tc.score, tc.share)
		}
	}
	if got := shareAtOrAbove(asc, 0.8); math.Abs(got-0.3) > 1e-12 {
		t.Errorf("share at or above 0.8: %v", got)
	}
}
