package configfield_test

import (
	"errors"
	"testing"

	"github.com/fraudstream/fraudstream/internal/platform/configfield"
)

func TestError(t *testing.T) {
	err := configfield.New("scorer", "CommitInterval", "%s is below %s", "0s", "1ms")
	if got, want := err.Error(), "scorer: Config.CommitInterval: 0s is below 1ms"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var fe *configfield.Error
	if !errors.As(err, &fe) || fe.ConfigField() != "CommitInterval" {
		t.Errorf("errors.As = %v, field %q", fe, fe.ConfigField())
	}
	if errors.Unwrap(err).Error() != "0s is below 1ms" {
		t.Errorf("Unwrap = %v", errors.Unwrap(err))
	}
}
