package main

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	const mod = "example.com/m"
	tests := []struct {
		name    string
		graph   map[string][]string
		problem string // "" when the graph keeps the layers
	}{
		{"downward", map[string][]string{
			mod + "/cmd/app":              {mod + "/tools/devstack", "fmt"},
			mod + "/tools/devstack":       {mod + "/services/ingest", mod + "/tools/devbroker"},
			mod + "/services/ingest":      {mod + "/internal/platform/http", mod + "/pkg/event", "github.com/x/y"},
			mod + "/services/scorer":      {mod + "/services/scorer/rules"},
			mod + "/internal/platform/kf": {mod + "/pkg/event"},
			mod + "/pkg/windowing":        {mod + "/pkg/watermark", "time"},
		}, ""},
		{"service imports a tool", map[string][]string{
			mod + "/services/scorer": {mod + "/tools/traffic"},
		}, "services/scorer imports tools/traffic: tools/ is above services/"},
		{"platform imports a service", map[string][]string{
			mod + "/internal/platform/kafkaopt": {mod + "/services/scorer"},
		}, "internal/platform/kafkaopt imports services/scorer: services/ is above internal/platform/"},
		{"service imports another service", map[string][]string{
			mod + "/services/alerts": {mod + "/services/scorer/rules"},
		}, "a service never imports another service"},
		{"pkg imports a module", map[string][]string{
			mod + "/pkg/event": {"github.com/x/y"},
		}, "pkg/ uses the standard library only"},
		{"package outside the layers", map[string][]string{
			mod + "/internal/kafkaopt": {},
		}, "internal/kafkaopt: not in any layer folder"},
		{"import of a package outside the layers", map[string][]string{
			mod + "/cmd/app": {mod + "/internal/misc"},
		}, "imports internal/misc, which is in no layer folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check(mod, tt.graph)
			if tt.problem == "" {
				if len(got) != 0 {
					t.Fatalf("check = %q, want no problem", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], tt.problem) {
				t.Fatalf("check = %q, want one problem containing %q", got, tt.problem)
			}
		})
	}
}
