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
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-connections/nat"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for wait.ForSQL
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
	"golang.org/x/sync/errgroup"
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
	t        *testing.T
	cfg      config
	net      *testcontainers.DockerNetwork
	ingest   string // http://host:port
	alerts   string
	broker   testcontainers.Container
	pg       testcontainers.Container
	ingestC  testcontainers.Container
	scorers  []testcontainers.Container // index i is scorer-(i+1)
	alertsC  testcontainers.Container   // alertsCs[0]
	alertsCs []testcontainers.Container

	mu  sync.Mutex
	all []named // every container started, for terminate
}

// config shapes one pipeline. The zero value is the happy path's: one
// scorer, one alerts, franz-go's default group timeouts.
type config struct {
	scorers int // default 1
	alerts  int // default 1
	// fastFailover sets the scorer and alerts groups' session timeout to
	// 6 s (the broker's group.min.session.timeout.ms) and their rebalance
	// timeout to 10 s, so a killed member's partitions move quickly.
	fastFailover bool
	// persistent gives the broker a data dir, so it survives a restart.
	persistent bool
	ingestEnv  map[string]string
}

const (
	sessionTimeout   = "6s"
	rebalanceTimeout = "10s"
)

// start brings up broker, PostgreSQL, Redis, ingest, scorer and alerts.
func start(t *testing.T, ctx context.Context) *env { return startWith(t, ctx, config{}) }

// startWith brings up a pipeline shaped by cfg.
func startWith(t *testing.T, ctx context.Context, cfg config) *env {
	t.Helper()
	cfg.scorers = max(cfg.scorers, 1)
	cfg.alerts = max(cfg.alerts, 1)
	began := time.Now()
	nw, err := network.New(ctx)
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	e := &env{t: t, cfg: cfg, net: nw}
	t.Cleanup(func() {
		if err := nw.Remove(context.Background()); err != nil {
			t.Logf("remove network: %v", err)
		}
	})
	t.Cleanup(e.terminate)

	brokerCmd := []string{"broker", "--listen", "0.0.0.0:9092", "--advertise", "broker:9092", "--partitions", "6"}
	if cfg.persistent {
		brokerCmd = append(brokerCmd, "--data-dir", "/var/lib/fraudstream/broker")
	}
	// Containers that do not depend on each other start together: creating
	// and starting one takes seconds on a busy Docker engine.
	infra := e.parallel(ctx, []named{
		{alias: "broker", req: testcontainers.ContainerRequest{
			Image:        fraudstreamImage,
			Cmd:          brokerCmd,
			ExposedPorts: []string{"9092/tcp"},
			WaitingFor:   wait.ForLog("broker ready").WithStartupTimeout(30 * time.Second),
		}},
		{alias: "postgres", req: testcontainers.ContainerRequest{
			Image: postgresImage,
			Env:   map[string]string{"POSTGRES_USER": "fraud", "POSTGRES_PASSWORD": "fraud", "POSTGRES_DB": "fraud"},
			// A listening port is not enough: the image may still be
			// creating the database. Wait until the database answers.
			WaitingFor: wait.ForSQL("5432/tcp", "pgx", func(host string, port nat.Port) string {
				return fmt.Sprintf("postgres://fraud:fraud@%s/fraud?sslmode=disable", net.JoinHostPort(host, port.Port()))
			}).WithStartupTimeout(90 * time.Second).WithPollInterval(250 * time.Millisecond),
			ExposedPorts: []string{"5432/tcp"},
		}},
		{alias: "redis", req: testcontainers.ContainerRequest{
			Image:        redisImage,
			WaitingFor:   wait.ForListeningPort("6379/tcp").WithStartupTimeout(30 * time.Second),
			ExposedPorts: []string{"6379/tcp"},
		}},
	})
	e.broker, e.pg = infra[0], infra[1]

	ingestEnv := map[string]string{
		"INGEST_API_KEYS": "e2e:" + sha256hex(apiKey),
		"REDIS_URL":       "redis://redis:6379/0",
	}
	for k, v := range cfg.ingestEnv {
		ingestEnv[k] = v
	}
	// Alerts replicas after the first wait for it: the first one migrates
	// the database.
	services := []named{{alias: "ingest", req: e.service("ingest", "INGEST_ADDR", "8081", ingestEnv)}, e.alertsRequest(1)}
	for i := 1; i <= cfg.scorers; i++ {
		services = append(services, e.scorerRequest(i))
	}
	started := e.parallel(ctx, services)
	e.ingestC = started[0]
	e.alertsCs = append(e.alertsCs, started[1])
	e.scorers = started[2:]
	for i := 2; i <= cfg.alerts; i++ {
		e.addAlerts(ctx, i)
	}
	e.alertsC = e.alertsCs[0]
	e.ingest = endpoint(t, ctx, e.ingestC, "8081/tcp")
	e.alerts = endpoint(t, ctx, e.alertsC, "8080/tcp")
	t.Logf("pipeline up in %s: broker, postgres, redis, ingest, %d scorer(s), %d alerts", time.Since(began).Round(time.Millisecond), cfg.scorers, cfg.alerts)
	return e
}

// named is a container request, or a started container, and its network
// alias.
type named struct {
	alias string
	req   testcontainers.ContainerRequest
	c     testcontainers.Container
}

// scorerRequest is scorer-i, with a transactional id that is stable across
// its restarts, as a StatefulSet pod's is.
func (e *env) scorerRequest(i int) named {
	envv := map[string]string{"SCORER_TRANSACTIONAL_ID": fmt.Sprintf("e2e-scorer-%d", i)}
	if e.cfg.fastFailover {
		envv["SCORER_SESSION_TIMEOUT"] = sessionTimeout
		envv["SCORER_REBALANCE_TIMEOUT"] = rebalanceTimeout
	}
	return named{alias: fmt.Sprintf("scorer-%d", i), req: e.service("scorer", "SCORER_ADDR", "8082", envv)}
}

// alertsRequest is alerts replica i; all replicas share the sink's group.
func (e *env) alertsRequest(i int) named {
	envv := map[string]string{
		"DATABASE_URL": "postgres://fraud:fraud@postgres:5432/fraud?sslmode=disable",
		"ALERTS_TOKEN": "e2e-dashboard-token",
	}
	if e.cfg.fastFailover {
		envv["ALERTS_SESSION_TIMEOUT"] = sessionTimeout
		envv["ALERTS_REBALANCE_TIMEOUT"] = rebalanceTimeout
	}
	alias := "alerts"
	if i > 1 {
		alias = fmt.Sprintf("alerts-%d", i)
	}
	return named{alias: alias, req: e.service("alerts", "ALERTS_ADDR", "8080", envv)}
}

// addAlerts starts alerts replica i.
func (e *env) addAlerts(ctx context.Context, i int) testcontainers.Container {
	n := e.alertsRequest(i)
	c := e.run(ctx, n.alias, n.req)
	e.alertsCs = append(e.alertsCs, c)
	return c
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
	c, err := e.launch(ctx, alias, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// parallel starts the containers together and returns them in order.
func (e *env) parallel(ctx context.Context, reqs []named) []testcontainers.Container {
	e.t.Helper()
	out := make([]testcontainers.Container, len(reqs))
	var g errgroup.Group
	for i, n := range reqs {
		g.Go(func() (err error) {
			out[i], err = e.launch(ctx, n.alias, n.req)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// launch starts one container on the env's network under alias, and
// removes it when the test ends (showing its logs if the test failed).
func (e *env) launch(ctx context.Context, alias string, req testcontainers.ContainerRequest) (testcontainers.Container, error) {
	req.Networks = []string{e.net.Name}
	req.NetworkAliases = map[string][]string{e.net.Name: {alias}}
	req.Name = fmt.Sprintf("fs-e2e-%s-%d", alias, time.Now().UnixNano())
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	if c != nil {
		e.mu.Lock()
		e.all = append(e.all, named{alias: alias, c: c})
		e.mu.Unlock()
	}
	if err != nil {
		return c, fmt.Errorf("start %s: %w", alias, err)
	}
	return c, nil
}

// terminate removes every container the env started, all at once (one
// by one takes seconds each), after showing their logs if the test failed.
func (e *env) terminate() {
	e.mu.Lock()
	all := e.all
	e.mu.Unlock()
	if e.t.Failed() {
		for _, n := range all {
			dumpLogs(e.t, n.alias, n.c)
		}
	}
	var wg sync.WaitGroup
	for _, n := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.c.Terminate(context.Background()); err != nil {
				e.t.Logf("terminate %s: %v", n.alias, err)
			}
		}()
	}
	wg.Wait()
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
