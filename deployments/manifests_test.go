// Package deployments holds the files users deploy fraudstream with; its
// tests check that they agree with the code: every environment variable a
// manifest sets is one the binary reads, ports match the listen addresses,
// probes hit the endpoints every service serves, and compose.yaml parses.
package deployments

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// knownEnv builds the binary and reads, from each command's -h, the
// environment variables it falls back to.
func knownEnv(t *testing.T) map[string]map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fraudstream")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/fraudstream").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	known := map[string]map[string]bool{}
	for _, cmd := range []string{"ingest", "scorer", "alerts", "broker", "loadgen", "dev", "topics"} {
		out, _ := exec.Command(bin, cmd, "-h").CombinedOutput()
		known[cmd] = map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(string(out), -1) {
			known[cmd][m[1]] = true
		}
		if len(known[cmd]) == 0 {
			t.Fatalf("%s -h lists no environment variables:\n%s", cmd, out)
		}
	}
	return known
}

type object struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Template struct {
			Spec struct {
				Containers []container `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		Selector map[string]any `yaml:"selector"`
	} `yaml:"spec"`
}

type container struct {
	Name    string   `yaml:"name"`
	Args    []string `yaml:"args"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func readObjects(t *testing.T, dir string) []object {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var objs []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind != "" {
				objs = append(objs, o)
			}
		}
	}
	return objs
}

func TestKubernetesManifestsMatchTheCode(t *testing.T) {
	known := knownEnv(t)
	objs := readObjects(t, "kubernetes")
	maps := map[string]map[string]string{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			maps["configmap/"+o.Metadata.Name] = o.Data
		case "Secret":
			maps["secret/"+o.Metadata.Name] = o.StringData
		}
	}
	jobs := 0
	for _, o := range objs {
		if o.Kind != "Job" {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			jobs++
			if len(c.Args) == 0 || known[c.Args[0]] == nil {
				t.Errorf("Job/%s: args %v do not start with a fraudstream command", o.Metadata.Name, c.Args)
				continue
			}
			for _, e := range c.Env {
				if !known[c.Args[0]][e.Name] {
					t.Errorf("Job/%s: sets %s, which `fraudstream %s` does not read", o.Metadata.Name, e.Name, c.Args[0])
				}
			}
		}
	}
	if jobs != 1 {
		t.Errorf("found %d jobs, want the topics job", jobs)
	}
	workloads := 0
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			workloads++
			if len(c.Args) == 0 || known[c.Args[0]] == nil {
				t.Errorf("%s/%s: args %v do not start with a fraudstream command", o.Kind, o.Metadata.Name, c.Args)
				continue
			}
			cmd := c.Args[0]
			addrVar := strings.ToUpper(cmd) + "_ADDR"
			port := ""
			for _, e := range c.Env {
				if e.Name == "POD_NAME" { // only used to compose another value
					continue
				}
				if !known[cmd][e.Name] {
					t.Errorf("%s: sets %s, which `fraudstream %s` does not read", o.Metadata.Name, e.Name, cmd)
				}
				if e.Name == addrVar {
					port = e.Value[strings.LastIndexByte(e.Value, ':')+1:]
				}
			}
			// A shared ConfigMap or Secret may hold another service's settings,
			// but each key must be read by some service.
			for _, ef := range c.EnvFrom {
				ref := ""
				if ef.ConfigMapRef != nil {
					ref = "configmap/" + ef.ConfigMapRef.Name
				} else if ef.SecretRef != nil {
					ref = "secret/" + ef.SecretRef.Name
				}
				data, ok := maps[ref]
				if !ok {
					t.Errorf("%s: envFrom %s, which no manifest defines", o.Metadata.Name, ref)
				}
				for k := range data {
					readBy := false
					for _, svc := range []string{"ingest", "scorer", "alerts"} {
						readBy = readBy || known[svc][k]
					}
					if !readBy {
						t.Errorf("%s sets %s, which no service reads", ref, k)
					}
				}
			}
			if port == "" {
				t.Errorf("%s: does not set %s", o.Metadata.Name, addrVar)
			}
			named := map[string]int{}
			for _, p := range c.Ports {
				named[p.Name] = p.ContainerPort
			}
			if got := named["http"]; port != "" && strconv.Itoa(got) != port {
				t.Errorf("%s: containerPort http = %d, but %s listens on %s", o.Metadata.Name, got, addrVar, port)
			}
			for name, p := range map[string]*probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
				if p == nil || p.HTTPGet.Path != want || named[p.HTTPGet.Port] == 0 {
					t.Errorf("%s: %s probe must GET %s on a named container port", o.Metadata.Name, name, want)
				}
			}
		}
	}
	if workloads != 3 {
		t.Errorf("found %d workloads, want ingest, scorer and alerts", workloads)
	}
}

func TestComposeParses(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Command     any               `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"kafka", "topics", "redis", "postgres", "ingest", "scorer", "alerts", "traffic"} {
		if _, ok := doc.Services[svc]; !ok {
			t.Errorf("compose.yaml has no %s service", svc)
		}
	}
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("docker-compose is not installed: CI validates compose.yaml with `docker-compose config`")
		}
		t.Log("docker-compose not installed; compose.yaml only parsed as YAML")
		return
	}
	if out, err := exec.Command(dc, "-f", "compose.yaml", "config", "-q").CombinedOutput(); err != nil {
		t.Errorf("docker-compose config: %v\n%s", err, out)
	}
}
