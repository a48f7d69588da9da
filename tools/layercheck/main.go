// Command layercheck fails when a package of this module imports upward.
//
// The folders are the layers (docs/architecture.md#layers), from the bottom:
//
//	pkg/                libraries: the wire schema, watermarks, windows
//	internal/platform/  shared plumbing the services import
//	services/           ingest, scorer, alerts; never one another
//	tools/              what drives or measures the services
//	cmd/                the binary's wiring
//
// A package may import packages of its own layer or below. Within
// services/, a package may import only its own service's packages; pkg/
// imports the standard library and pkg/ only. Only the code that ships is
// checked: test files may use the test tools to drive what they test.
//
// Usage (make lint runs it from the module root):
//
//	go run ./tools/layercheck [packages]   # default ./...
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

func main() {
	patterns := os.Args[1:]
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	mod, graph, err := load(patterns)
	if err != nil {
		fmt.Fprintln(os.Stderr, "layercheck:", err)
		os.Exit(2)
	}
	problems := check(mod, graph)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "layercheck: %d import(s) break the layers (docs/architecture.md#layers)\n", len(problems))
		os.Exit(1)
	}
}

// load lists the module path and, for each package matched, its non-test
// imports.
func load(patterns []string) (string, map[string][]string, error) {
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -m: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	// Packages with test files only (deployments/) ship nothing.
	args := append([]string{"list", "-f", "{{if .GoFiles}}{{.ImportPath}} {{join .Imports \" \"}}{{end}}"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list: %w: %s", err, stderr.String())
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			graph[f[0]] = f[1:]
		}
	}
	return mod, graph, sc.Err()
}

// layer is a folder prefix and its rank; a higher rank sits higher.
type layer struct {
	prefix string
	rank   int
}

// layers, most specific prefix first.
var layers = []layer{
	{"pkg/", 0},
	{"internal/platform/", 1},
	{"services/", 2},
	{"tools/", 3},
	{"cmd/", 4},
}

// classify returns the layer of a package path relative to the module,
// and false for a package outside every layer.
func classify(rel string) (layer, bool) {
	for _, l := range layers {
		if strings.HasPrefix(rel+"/", l.prefix) {
			return l, true
		}
	}
	return layer{}, false
}

// service returns the service a path under services/ belongs to.
func service(rel string) string {
	parts := strings.SplitN(rel, "/", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// isStd reports whether an import path is the standard library's: its
// first element has no dot.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// check returns one line per import that breaks the layers, sorted.
func check(mod string, graph map[string][]string) []string {
	var problems []string
	for pkg, imports := range graph {
		if !strings.HasPrefix(pkg+"/", mod+"/") {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		from, ok := classify(rel)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: not in any layer folder (pkg/, internal/platform/, services/, tools/, cmd/)", rel))
			continue
		}
		for _, imp := range imports {
			if !strings.HasPrefix(imp+"/", mod+"/") {
				if from.prefix == "pkg/" && !isStd(imp) {
					problems = append(problems, fmt.Sprintf("%s imports %s: pkg/ uses the standard library only", rel, imp))
				}
				continue
			}
			irel := strings.TrimPrefix(strings.TrimPrefix(imp, mod), "/")
			to, ok := classify(irel)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%s imports %s, which is in no layer folder", rel, irel))
			case to.rank > from.rank:
				problems = append(problems, fmt.Sprintf("%s imports %s: %s is above %s", rel, irel, to.prefix, from.prefix))
			case from.prefix == "services/" && to.prefix == "services/" && service(rel) != service(irel):
				problems = append(problems, fmt.Sprintf("%s imports %s: a service never imports another service", rel, irel))
			}
		}
	}
	sort.Strings(problems)
	return problems
}
