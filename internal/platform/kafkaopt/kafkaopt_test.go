package kafkaopt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateNamesTheSetting(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "KAFKA_BROKERS"},
		{Config{Brokers: []string{"localhost"}}, "KAFKA_BROKERS"},
		{Config{Brokers: []string{"h:1"}, SASLMechanism: "GSSAPI"}, "KAFKA_SASL_MECHANISM"},
		{Config{Brokers: []string{"h:1"}, SASLMechanism: "PLAIN"}, "KAFKA_SASL_USER"},
		{Config{Brokers: []string{"h:1"}, TLSCAFile: "/does/not/exist"}, "KAFKA_TLS_CA_FILE"},
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	ok := Config{Brokers: []string{"a:9092", "[::1]:9093"}, SASLMechanism: "SCRAM-SHA-512", SASLUser: "u"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestOpts(t *testing.T) {
	for _, mech := range []string{"", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		opts, err := Config{Brokers: []string{"a:1"}, TLS: true, SASLMechanism: mech, SASLUser: "u"}.Opts()
		if err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
		want := 2 // seeds and TLS
		if mech != "" {
			want++
		}
		if len(opts) != want {
			t.Errorf("%s: %d options, want %d", mech, len(opts), want)
		}
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (Config{Brokers: []string{"a:1"}, TLSCAFile: bad}).Opts(); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("CA file without a certificate: got %v", err)
	}
}
