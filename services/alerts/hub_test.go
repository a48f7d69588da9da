package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraudstream/fraudstream/internal/platform/kafkaopt"
)

func TestHubDropsSlowClientsWithoutBlocking(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	h := newHub(2, 3, m)
	h.start([]int64{5, 0})
	slow, pos, _ := h.subscribe(false)
	if formatPosition(pos) != "5,0" {
		t.Fatalf("subscribe position = %v, want 5,0", pos)
	}
	fast, _, _ := h.subscribe(false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			h.publish(int32(i%3), int64(10+i), []byte("{}"))
			<-fast.wake // fast keeps up; slow never reads
			evs := fast.take(nil)
			if len(evs) != 1 {
				t.Errorf("fast got %d events, want 1", len(evs))
				return
			}
			if want := "event: scored\ndata: {}\n\n"; !strings.HasSuffix(string(evs[0].msg), want) {
				t.Errorf("msg = %q", evs[0].msg)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publish blocked on a slow client")
	}
	select {
	case <-slow.kicked:
	default:
		t.Fatal("slow client was not disconnected")
	}
	select {
	case <-fast.kicked:
		t.Fatal("fast client was disconnected")
	default:
	}
	if n := testutil.ToFloat64(m.sseSlowKicked); n != 1 {
		t.Fatalf("slow disconnects = %v, want 1", n)
	}
	h.unsubscribe(slow) // after a kick: harmless
	h.subscribe(false)
	_, pos, _ = h.subscribe(false)
	if got := formatPosition(pos); got != "110,108,109" {
		t.Errorf("position after 100 events = %s, want 110,108,109", got)
	}
	if _, _, err := h.subscribe(false); err != errTooManyClients {
		t.Fatalf("4th subscribe err = %v, want errTooManyClients", err)
	}
}

func TestHubQueuesLiveEventsWhileAClientResumes(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	h := newHub(2, 3, m)
	h.start([]int64{0})
	c, _, _ := h.subscribe(true)
	for i := range 1000 { // far beyond bufSize: the handler is backfilling
		h.publish(0, int64(i), []byte("{}"))
	}
	select {
	case <-c.kicked:
		t.Fatal("a resuming client was dropped during its backfill")
	default:
	}
	evs := c.settle(h.bufSize)
	if len(evs) != 1000 || evs[0].offset != 0 || evs[999].offset != 999 {
		t.Fatalf("settle returned %d events", len(evs))
	}
	// From now on the normal bound holds.
	for i := range 3 {
		h.publish(0, int64(1000+i), []byte("{}"))
	}
	select {
	case <-c.kicked:
	default:
		t.Fatal("a settled client 3 events behind with a buffer of 2 was not dropped")
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Kafka = kafkaopt.Config{Brokers: []string{"127.0.0.1:9092"}}
	good.DatabaseURL = "sqlite:alerts.db"
	if err := good.Validate(); err != nil {
		t.Fatalf("default config with brokers and DB: %v", err)
	}
	for _, addr := range []string{"localhost:8080", "[::1]:8080", "127.0.0.2:80"} {
		c := good
		c.Addr = addr
		if err := c.Validate(); err != nil {
			t.Errorf("loopback %s without a token: %v", addr, err)
		}
	}
	exposed := good
	exposed.Addr, exposed.Token = "0.0.0.0:8080", "0123456789abcdef"
	if err := exposed.Validate(); err != nil {
		t.Errorf("0.0.0.0 with a token: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"addr", func(c *Config) { c.Addr = "" }, "alerts: Config.Addr:"},
		{"brokers", func(c *Config) { c.Kafka.Brokers = nil }, "KAFKA_BROKERS:"},
		{"db", func(c *Config) { c.DatabaseURL = "" }, "alerts: Config.DatabaseURL:"},
		{"db scheme", func(c *Config) { c.DatabaseURL = "mysql://x/y" }, "alerts: Config.DatabaseURL:"},
		{"group", func(c *Config) { c.GroupID = "" }, "alerts: Config.GroupID:"},
		{"session timeout", func(c *Config) { c.SessionTimeout = 500 * time.Millisecond }, "alerts: Config.SessionTimeout:"},
		{"rebalance timeout", func(c *Config) { c.RebalanceTimeout = 0 }, "alerts: Config.RebalanceTimeout:"},
		{"batch", func(c *Config) { c.BatchSize = 0 }, "alerts: Config.BatchSize:"},
		{"flush", func(c *Config) { c.FlushInterval = 0 }, "alerts: Config.FlushInterval:"},
		{"conns", func(c *Config) { c.DBMaxConns = 0 }, "alerts: Config.DBMaxConns:"},
		{"sse buffer", func(c *Config) { c.SSEBuffer = 0 }, "alerts: Config.SSEBuffer:"},
		{"sse clients", func(c *Config) { c.SSEMaxClients = -1 }, "alerts: Config.SSEMaxClients:"},
		{"heartbeat", func(c *Config) { c.SSEHeartbeat = 0 }, "alerts: Config.SSEHeartbeat:"},
		{"startup", func(c *Config) { c.StartupTimeout = 0 }, "alerts: Config.StartupTimeout:"},
		{"stats retention", func(c *Config) { c.StatsRetention = 0 }, "alerts: Config.StatsRetention:"},
		{"token beyond localhost", func(c *Config) { c.Addr = "0.0.0.0:8080" }, "alerts: Config.Token: required"},
		{"token on all interfaces", func(c *Config) { c.Addr = ":8080" }, "alerts: Config.Token: required"},
		{"token on a LAN address", func(c *Config) { c.Addr = "192.168.1.5:8080" }, "alerts: Config.Token: required"},
		{"short token", func(c *Config) { c.Token = "short" }, "alerts: Config.Token: must be at least"},
		{"login idle timeout", func(c *Config) { c.LoginIdleTimeout = 0 }, "alerts: Config.LoginIdleTimeout:"},
		{"login max age below idle", func(c *Config) { c.LoginMaxAge = time.Minute }, "alerts: Config.LoginMaxAge:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestPositions(t *testing.T) {
	for _, in := range []string{"0", "5,0,17", "9223372036854775807,1"} {
		pos, err := parsePosition(in)
		if err != nil || formatPosition(pos) != in {
			t.Errorf("parse(%q) = %v, %v", in, pos, err)
		}
	}
	for _, bad := range []string{"", "a", "1,,2", "-1", "1-2", "1;2"} {
		if _, err := parsePosition(bad); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
	if got := formatPosition(mergePositions([]int64{1, 5}, []int64{3, 2, 7})); got != "3,5,7" {
		t.Errorf("merge = %s", got)
	}
}
