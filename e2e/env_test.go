//go:build e2e

// Package e2e runs the real fraudstream binaries in containers on their own
// Docker network, with testcontainers-go, and attacks the pipeline from the
// outside. `make images` builds the images first; their names come from the
// E2E_*_IMAGE variables (see deployments/images/build.sh).
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-connections/nat"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

func image(variable, def string) string {
	if v := os.Getenv(variable); v != "" {
		return v
	}
	return def
}

var (
	fraudstreamImage = image("E2E_FRAUDSTREAM_IMAGE", "fraudstream:dev")
	postgresImage    = image("E2E_POSTGRES_IMAGE", "postgres:15")
	redisImage       = image("E2E_REDIS_IMAGE", "redis:7")
)

const apiKey = "e2e-secret-key"

// env is one pipeline on its own network.
type env struct {
	t       *testing.T
	net     *testcontainers.DockerNetwork
	ingest  string // http://host:port
	alerts  string
	scorers []testcontainers.Container
	alertsC testcontainers.Container
}

// start brings up broker, PostgreSQL, Redis, ingest, scorer and alerts.
func start(t *testing.T, ctx context.Context) *env {
	t.Helper()
	nw, err := network.New(ctx)
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	e := &env{t: t, net: nw}
	t.Cleanup(func() {
		if err := nw.Remove(context.Background()); err != nil {
			t.Logf("remove network: %v", err)
		}
	})

	e.run(ctx, "broker", testcontainers.ContainerRequest{
		Image:      fraudstreamImage,
		Cmd:        []string{"broker", "--listen", "0.0.0.0:9092", "--advertise", "broker:9092", "--partitions", "6"},
		WaitingFor: wait.ForLog("broker ready").WithStartupTimeout(30 * time.Second),
	})
	e.run(ctx, "postgres", testcontainers.ContainerRequest{
		Image:        postgresImage,
		Env:          map[string]string{"POSTGRES_USER": "fraud", "POSTGRES_PASSWORD": "fraud", "POSTGRES_DB": "fraud"},
		WaitingFor:   wait.ForListeningPort("5432/tcp").WithStartupTimeout(60 * time.Second),
		ExposedPorts: []string{"5432/tcp"},
	})
	e.run(ctx, "redis", testcontainers.ContainerRequest{
		Image:        redisImage,
		WaitingFor:   wait.ForListeningPort("6379/tcp").WithStartupTimeout(30 * time.Second),
		ExposedPorts: []string{"6379/tcp"},
	})
	ingest := e.run(ctx, "ingest", e.service("ingest", "INGEST_ADDR", "8081", map[string]string{
		"INGEST_API_KEYS": "e2e:" + sha256hex(apiKey),
		"REDIS_URL":       "redis://redis:6379/0",
	}))
	e.scorers = append(e.scorers, e.run(ctx, "scorer-1", e.service("scorer", "SCORER_ADDR", "8082", map[string]string{
		"SCORER_TRANSACTIONAL_ID": "e2e-scorer-1",
	})))
	e.alertsC = e.run(ctx, "alerts", e.service("alerts", "ALERTS_ADDR", "8080", map[string]string{
		"DATABASE_URL": "postgres://fraud:fraud@postgres:5432/fraud?sslmode=disable",
		"ALERTS_TOKEN": "e2e-dashboard-token",
	}))
	e.ingest = endpoint(t, ctx, ingest, "8081/tcp")
	e.alerts = endpoint(t, ctx, e.alertsC, "8080/tcp")
	return e
}

func (e *env) service(cmd, addrVar, port string, extra map[string]string) testcontainers.ContainerRequest {
	envv := map[string]string{"KAFKA_BROKERS": "broker:9092", addrVar: "0.0.0.0:" + port, "LOG_FORMAT": "json"}
	for k, v := range extra {
		envv[k] = v
	}
	return testcontainers.ContainerRequest{
		Image:        fraudstreamImage,
		Cmd:          []string{cmd},
		Env:          envv,
		ExposedPorts: []string{port + "/tcp"},
		WaitingFor:   wait.ForHTTP("/readyz").WithPort(nat.Port(port + "/tcp")).WithStartupTimeout(60 * time.Second),
	}
}

func (e *env) run(ctx context.Context, alias string, req testcontainers.ContainerRequest) testcontainers.Container {
	e.t.Helper()
	req.Networks = []string{e.net.Name}
	req.NetworkAliases = map[string][]string{e.net.Name: {alias}}
	req.Name = fmt.Sprintf("fs-e2e-%s-%d", alias, time.Now().UnixNano())
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	if c != nil {
		e.t.Cleanup(func() {
			if e.t.Failed() {
				dumpLogs(e.t, alias, c)
			}
			if err := c.Terminate(context.Background()); err != nil {
				e.t.Logf("terminate %s: %v", alias, err)
			}
		})
	}
	if err != nil {
		e.t.Fatalf("start %s: %v", alias, err)
	}
	return c
}

func endpoint(t *testing.T, ctx context.Context, c testcontainers.Container, port string) string {
	t.Helper()
	u, err := c.PortEndpoint(ctx, nat.Port(port), "http")
	if err != nil {
		t.Fatalf("endpoint %s: %v", port, err)
	}
	return u
}

func dumpLogs(t *testing.T, alias string, c testcontainers.Container) {
	r, err := c.Logs(context.Background())
	if err != nil {
		return
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	t.Logf("--- %s logs ---\n%s", alias, b)
}

func getJSON(ctx context.Context, url string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer e2e-dashboard-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
