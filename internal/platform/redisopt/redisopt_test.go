package redisopt

import (
	"strings"
	"testing"
	"time"
)

func TestOptions(t *testing.T) {
	tests := []struct {
		name        string
		policy      Policy
		wantRetries int
		wantPool    time.Duration
	}{
		{"no retries", Policy{Timeout: 500 * time.Millisecond}, -1, 0},
		{"one retry", Policy{Timeout: 500 * time.Millisecond, Retries: 1}, 1, 0},
		{"bounded pool wait", Policy{Timeout: 200 * time.Millisecond, PoolTimeout: 200 * time.Millisecond}, -1, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Options("rediss://user:pw@redis.example:6380/2", tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if o.TLSConfig == nil || o.DB != 2 || o.Addr != "redis.example:6380" {
				t.Errorf("URL: TLS %v DB %d addr %s", o.TLSConfig, o.DB, o.Addr)
			}
			if o.DialTimeout != tt.policy.Timeout || o.ReadTimeout != tt.policy.Timeout || o.WriteTimeout != tt.policy.Timeout {
				t.Errorf("timeouts %s %s %s, want %s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, tt.policy.Timeout)
			}
			if !o.ContextTimeoutEnabled {
				t.Error("context deadlines do not bound calls")
			}
			if o.MaxRetries != tt.wantRetries {
				t.Errorf("MaxRetries = %d, want %d", o.MaxRetries, tt.wantRetries)
			}
			if o.PoolTimeout != tt.wantPool {
				t.Errorf("PoolTimeout = %s, want %s", o.PoolTimeout, tt.wantPool)
			}
		})
	}
}

func TestOptionsRefusesWithoutLeakingThePassword(t *testing.T) {
	for _, raw := range []string{"", "http://127.0.0.1:6379", "redis://:hunter2@127.0.0.1:6379/x"} {
		t.Run(raw, func(t *testing.T) {
			_, err := Options(raw, Policy{Timeout: time.Second})
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes the password: %v", err)
			}
		})
	}
}
