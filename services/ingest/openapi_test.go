package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// openAPIDoc is openapi.yaml as JSON values (what a JSON Schema validator
// takes), with the document itself as the root of every $ref.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var y any
	if err := yaml.Unmarshal(openAPI, &y); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	b, err := json.Marshal(y)
	if err != nil {
		t.Fatalf("openapi.yaml as JSON: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc.(map[string]any)
}

// TestOpenAPIOperations: every route and method the router serves is an
// operation in openapi.yaml, and every operation is served.
func TestOpenAPIOperations(t *testing.T) {
	s, _ := startService(t, testConfig(t, newCluster(t)))
	paths := openAPIDoc(t)["paths"].(map[string]any)
	methods := map[string]map[string]bool{} // route → served methods, lower case
	err := chi.Walk(s.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if methods[route] == nil {
			methods[route] = map[string]bool{}
		}
		methods[route][strings.ToLower(method)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for route, ms := range methods {
		if len(ms) > 5 {
			// Mounted for every method (the ops endpoints): GET is
			// what is documented.
			ms = map[string]bool{"get": true}
		}
		item, _ := paths[route].(map[string]any)
		for m := range ms {
			served[m+" "+route] = true
			if _, ok := item[m]; !ok {
				t.Errorf("%s %s is served but not in openapi.yaml", strings.ToUpper(m), route)
			}
		}
	}
	for path, item := range paths {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch":
				if !served[method+" "+path] {
					t.Errorf("openapi.yaml documents %s %s, which is not served", strings.ToUpper(method), path)
				}
			}
		}
	}
}

// TestOpenAPIExamples validates every example in openapi.yaml against the
// schema next to it (OpenAPI 3.1 schemas are JSON Schema 2020-12), so the
// examples a client copies are right and the schemas are not vacuous.
func TestOpenAPIExamples(t *testing.T) {
	doc := openAPIDoc(t)
	c := jsonschema.NewCompiler()
	const base = "mem://openapi.json"
	if err := c.AddResource(base, doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(v any, ptr string)
	walk = func(v any, ptr string) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["schema"].(map[string]any); ok {
				var examples []struct {
					name string
					val  any
				}
				if ex, ok := v["example"]; ok {
					examples = append(examples, struct {
						name string
						val  any
					}{"example", ex})
				}
				if exs, ok := v["examples"].(map[string]any); ok {
					for name, ex := range exs {
						examples = append(examples, struct {
							name string
							val  any
						}{"examples/" + name, ex.(map[string]any)["value"]})
					}
				}
				if len(examples) > 0 {
					sch, err := c.Compile(base + "#" + ptr + "/schema")
					if err != nil {
						t.Fatalf("compile schema at %s: %v", ptr, err)
					}
					for _, ex := range examples {
						n++
						if err := sch.Validate(ex.val); err != nil {
							t.Errorf("%s/%s does not match its schema: %v", ptr, ex.name, err)
						}
					}
				}
			}
			for k, child := range v {
				walk(child, ptr+"/"+strings.NewReplacer("~", "~0", "/", "~1").Replace(k))
			}
		case []any:
			for i, child := range v {
				walk(child, fmt.Sprintf("%s/%d", ptr, i))
			}
		}
	}
	walk(doc, "")
	if n < 10 {
		t.Errorf("validated only %d examples", n)
	}
	t.Logf("validated %d examples", n)

	// The schemas must reject what ingest rejects, or the examples above
	// prove nothing.
	tx, err := c.Compile(base + "#/components/schemas/Transaction")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{
		{"cvv": "123"}, {"amount_minor": 0}, {"channel": "phone"}, {"currency": "eur"}, {"transaction_id": nil},
	} {
		var v any
		_ = json.Unmarshal(txWith(bad), &v)
		if tx.Validate(v) == nil {
			t.Errorf("Transaction schema accepts %v", bad)
		}
	}
}

// TestOpenAPIProblemTypes: every problem type ingest can send is named in
// openapi.yaml.
func TestOpenAPIProblemTypes(t *testing.T) {
	var missing []string
	for k := range kinds {
		if !bytes.Contains(openAPI, []byte("`"+kinds[k].slug+"`")) {
			missing = append(missing, kinds[k].slug)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("openapi.yaml does not name problem types %v", missing)
	}
}
