package scorer

import (
	"testing"

	"github.com/fraudstream/fraudstream/tools/testenv"
)

// TestMain stops the throwaway Redis the profile tests start (testenv).
func TestMain(m *testing.M) { testenv.Main(m) }
