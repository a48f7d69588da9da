package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/performance"
	"github.com/chromedp/chromedp"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Bounds the dashboard must hold while 1,000 scored transactions a second
// stream into it (docs/design/dashboard.md).
const (
	soakRate       = 1000     // scored records per second into the hub
	soakMaxCPU     = 0.20     // renderer CPU, share of one core
	soakMaxHeap    = 32 << 20 // JS heap after a garbage collection
	soakHeapGrowth = 4 << 20  // last sample over the first, after warm-up
	soakMaxNodes   = 6000     // DOM nodes after a garbage collection
	soakPSSGrowth  = 64 << 20 // renderer memory, last sample over the first
	soakWarmUp     = 5 * time.Second
	soakSample     = 5 * time.Second
)

// TestDashboardHoldsAtThousandPerSecond streams soakRate scored records a
// second through the real SSE endpoint into the dashboard (feeding the hub
// directly, as the live consumer does, so the database and Kafka stay out
// of the measurement) and measures Chromium's renderer: CPU from
// /proc/<pid>/stat, JS heap and DOM nodes from the CDP Performance domain
// after a forced garbage collection. It runs 30 s in make test;
// ALERTS_BROWSER_SOAK=10m runs the long soak. The page shows the live feed;
// ALERTS_BROWSER_SOAK_TAB=alerts measures it with the alert queue shown.
func TestDashboardHoldsAtThousandPerSecond(t *testing.T) {
	dur := 30 * time.Second
	if s := os.Getenv("ALERTS_BROWSER_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 2*soakWarmUp {
			t.Fatalf("ALERTS_BROWSER_SOAK=%q: want a duration of at least %v, e.g. 10m", s, 2*soakWarmUp)
		}
		dur = d
	}
	ctx := NewBrowser(t)
	browser := chromedp.FromContext(ctx).Browser.Process()
	svc := start(t, testConfig(newCluster(t), sqliteURL(t)), nil)

	// Any uncaught error in the page fails the test.
	if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument,
		cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `window.__errors = [];
window.addEventListener("error", (e) => { if (window.__errors.length < 20) window.__errors.push(String(e.message)); });`}); err != nil {
		t.Fatalf("install the error recorder: %v", err)
	}
	tab := "live"
	if s := os.Getenv("ALERTS_BROWSER_SOAK_TAB"); s != "" {
		if s != "live" && s != "alerts" {
			t.Fatalf("ALERTS_BROWSER_SOAK_TAB=%q: want live or alerts", s)
		}
		tab = s
	}
	Do(t, ctx, "open dashboard", chromedp.Navigate("http://"+svc.Addr()+"/#"+tab))
	WaitJS(t, ctx, "live status", `document.getElementById("status").dataset.state === "live"`)
	if _, err := chromedp.Call(ctx, performance.Enable, performance.EnableParams{}); err != nil {
		t.Fatalf("Performance.enable: %v", err)
	}

	// The producer: soakRate records a second in 10 ms steps, each with
	// its own transaction id and ~5 % alerts.
	t.Logf("one record is %d bytes of JSON", len(soakRecord(t, 0)))
	var sent atomic.Int64
	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		svc.hub.mu.Lock()
		off := int64(0)
		if len(svc.hub.pos) > 0 {
			off = svc.hub.pos[0]
		}
		svc.hub.mu.Unlock()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		begin := time.Now()
		for {
			select {
			case <-pubCtx.Done():
				return
			case <-tick.C:
			}
			due := int64(time.Since(begin).Seconds() * soakRate)
			for n := sent.Load(); n < due; n++ {
				svc.hub.publish(0, off, soakRecord(t, n))
				off++
				sent.Add(1)
			}
		}
	}()
	defer func() { stopPub(); <-pubDone }()

	renderers := func() []int { return rendererPIDs(t, browser.Pid) }
	time.Sleep(soakWarmUp)

	type sample struct {
		at          time.Duration
		cpu         float64 // share of a core since the previous sample
		heap, nodes float64
		rss         int64 // renderer PSS
	}
	var samples []sample
	began := time.Now()
	prevTicks, prevAt := rendererTicks(renderers()), time.Now()
	firstTicks, firstAt := prevTicks, prevAt
	for time.Since(began) < dur-soakWarmUp {
		time.Sleep(soakSample)
		ticks, now := rendererTicks(renderers()), time.Now()
		heap, nodes := pageMemory(t, ctx)
		s := sample{
			at:   time.Since(began).Round(time.Second),
			cpu:  float64(ticks-prevTicks) / clockTicks / now.Sub(prevAt).Seconds(),
			heap: heap, nodes: nodes, rss: rendererPSS(renderers()),
		}
		samples = append(samples, s)
		prevTicks, prevAt = ticks, now
		if len(samples)%12 == 0 || testing.Verbose() {
			t.Logf("%6v cpu %5.1f %%  heap %5.1f MB  nodes %5.0f  renderer pss %5.1f MB  sent %d  in the document: %s",
				s.at, 100*s.cpu, s.heap/(1<<20), s.nodes, float64(s.rss)/(1<<20), sent.Load(),
				EvalJS[string](t, ctx, `document.getElementsByTagName("*").length + " elements, " + document.querySelectorAll("#rows tr").length +
					" feed rows, " + document.querySelectorAll("#queue tr").length + " queue rows"`))
		}
	}
	ticks, now := rendererTicks(renderers()), time.Now()
	// Above what a human reads, the feed says how much it does not list.
	note := EvalJS[string](t, ctx, `document.getElementById("feed-sampled").hidden ? "" : document.getElementById("feed-sampled").textContent`)
	stopPub()
	<-pubDone
	cpu := float64(ticks-firstTicks) / clockTicks / now.Sub(firstAt).Seconds()
	first, last := samples[0], samples[len(samples)-1]
	var maxHeap, maxNodes float64
	for _, s := range samples {
		maxHeap, maxNodes = max(maxHeap, s.heap), max(maxNodes, s.nodes)
	}
	t.Logf("%s tab, %v at %d/s (%d records, %d renderer processes): renderer CPU %.1f %% of a core; JS heap %.1f → %.1f MB (max %.1f); "+
		"DOM nodes %.0f → %.0f (max %.0f); renderer PSS %.1f → %.1f MB",
		tab, dur, soakRate, sent.Load(), len(renderers()), 100*cpu, first.heap/(1<<20), last.heap/(1<<20), maxHeap/(1<<20),
		first.nodes, last.nodes, maxNodes, float64(first.rss)/(1<<20), float64(last.rss)/(1<<20))
	Screenshot(t, ctx, "soak")

	// The page took in every record: its counter is the sum of what it
	// parsed, whatever the feed showed.
	want := sent.Load()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := chromedp.Run(c, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("n-total").textContent.replace(/\D/g, "") === "%d"`, want),
		chromedp.WithPollingInterval(100*time.Millisecond)))
	cancel()
	if err != nil {
		got := EvalJS[string](t, ctx, `document.getElementById("n-total").textContent`)
		t.Errorf("the page counted %s scored records, the hub sent %d", got, want)
	}
	if cpu > soakMaxCPU {
		t.Errorf("renderer CPU %.1f %% of a core, want at most %.0f %%", 100*cpu, 100*soakMaxCPU)
	}
	if maxHeap > soakMaxHeap {
		t.Errorf("JS heap reached %.1f MB, want at most %d MB", maxHeap/(1<<20), soakMaxHeap>>20)
	}
	if last.heap > first.heap+soakHeapGrowth {
		t.Errorf("JS heap grew from %.1f to %.1f MB, want at most %d MB growth", first.heap/(1<<20), last.heap/(1<<20), soakHeapGrowth>>20)
	}
	if maxNodes > soakMaxNodes {
		t.Errorf("DOM nodes reached %.0f, want at most %d", maxNodes, soakMaxNodes)
	}
	if errs := EvalJS[[]string](t, ctx, `window.__errors`); len(errs) > 0 {
		t.Errorf("errors in the page: %s", strings.Join(errs, "; "))
	}
	if rows := EvalJS[int](t, ctx, `document.querySelectorAll("#rows tr").length`); rows != 100 {
		t.Errorf("the feed renders %d rows, want 100", rows)
	}
	if !strings.HasPrefix(note, "listing ") || !strings.Contains(note, "not listed") {
		t.Errorf("the feed's sampling note says %q at %d/s, want \"listing n of m / s · k / s not listed…\"", note, soakRate)
	}
	if last.rss > first.rss+soakPSSGrowth {
		t.Errorf("renderer memory (PSS) grew from %.1f to %.1f MB, want at most %d MB growth",
			float64(first.rss)/(1<<20), float64(last.rss)/(1<<20), soakPSSGrowth>>20)
	}
	// The alert queue counts every alert sent (5 in 100), shown or not;
	// shown, it lists the newest 100 and counts the rest, none lost.
	alerts := soakAlerts(want)
	if badge := EvalJS[string](t, ctx, `document.getElementById("queue-count").textContent`); badge != strconv.FormatInt(alerts, 10) {
		t.Errorf("the queue's badge says %q, want every alert sent: %d", badge, alerts)
	}
	Do(t, ctx, "open queue", JS(`location.hash = "#alerts"`))
	WaitJS(t, ctx, "queue rows", `document.querySelectorAll("#queue tr").length > 0`)
	queued := EvalJS[int](t, ctx, `document.querySelectorAll("#queue tr").length`)
	gap := EvalJS[string](t, ctx, `document.getElementById("queue-gap").hidden ? "" : document.getElementById("queue-gap-text").textContent`)
	badge := EvalJS[string](t, ctx, `document.getElementById("queue-count").textContent`)
	wantGap := fmt.Sprintf("%s more alerts arrived", humanInt(alerts-int64(queued)))
	if queued != 100 || !strings.HasPrefix(gap, wantGap) || badge != strconv.FormatInt(alerts, 10) {
		t.Errorf("the shown queue lists %d rows, says %q and has badge %q; want 100 rows, %q… and %d", queued, gap, badge, wantGap, alerts)
	}
	if newest := EvalJS[string](t, ctx, `document.querySelector("#queue tr").dataset.id`); newest != lastAlertID(want) {
		t.Errorf("the queue's top row is %s, want the newest alert %s", newest, lastAlertID(want))
	}
}

// soakAlerts is how many of the first n soak records are alerts.
func soakAlerts(n int64) int64 {
	a := n / 100 * 5
	for i := n / 100 * 100; i < n; i++ {
		switch i % 100 {
		case 7, 31, 55, 19, 83:
			a++
		}
	}
	return a
}

// lastAlertID is the id of the last alert among the first n soak records.
func lastAlertID(n int64) string {
	for i := n - 1; i >= 0; i-- {
		switch i % 100 {
		case 7, 31, 55, 19, 83:
			return fmt.Sprintf("soak-%d", i)
		}
	}
	return ""
}

// humanInt formats n with thousands separators, as toLocaleString does
// in an English locale.
func humanInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// soakRecord renders the n-th record of the soak as the hub's stream data.
func soakRecord(t *testing.T, n int64) []byte {
	decision := event.DecisionApprove
	switch n % 100 {
	case 7, 31, 55:
		decision = event.DecisionReview
	case 19, 83:
		decision = event.DecisionDecline
	}
	now := time.Now().UTC()
	s := scored(fmt.Sprintf("soak-%d", n), decision)
	s.Transaction.CardID = fmt.Sprintf("card-%d", n%5000)
	s.Transaction.AmountMinor = 100 + n%90000
	s.Transaction.EventTime = now.Add(-20 * time.Millisecond)
	s.Transaction.IngestTime = now.Add(-15 * time.Millisecond)
	s.ScoredAt = now
	s.Score = float64(n%1000) / 1000
	s.Offset = n
	data, err := json.Marshal(viewOf(s))
	if err != nil {
		t.Error(err)
	}
	return data
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// rendererPIDs lists the renderer processes among the descendants of the
// browser process.
func rendererPIDs(t *testing.T, browser int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	for queue := []int{browser}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			queue = append(queue, c)
			cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c), "cmdline"))
			if bytes.Contains(cmd, []byte("--type=renderer")) {
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no renderer process under the browser (pid %d)", browser)
	}
	return out
}

// procStat returns the fields of /proc/<pid>/stat after the command
// name: state, ppid, … (field 3 onwards of proc(5)), nil if it is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// rendererTicks sums user and system CPU time (utime, stime: fields 14
// and 15 of proc(5)) of the processes.
func rendererTicks(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		if f := procStat(pid); len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			n += u + s
		}
	}
	return n
}

// rendererPSS sums the proportional set size of the processes (their
// resident memory, shared pages divided among the processes sharing them).
func rendererPSS(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				n += kb << 10
			}
		}
	}
	return n
}

// pageMemory collects garbage in the page and returns its JS heap in use
// and its DOM node count.
func pageMemory(t *testing.T, ctx context.Context) (heap, nodes float64) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Call(c, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
		t.Fatalf("HeapProfiler.collectGarbage: %v", err)
	}
	m, err := chromedp.Call(c, performance.GetMetrics, cdp.Empty{})
	if err != nil {
		t.Fatalf("Performance.getMetrics: %v", err)
	}
	for _, x := range m.Metrics {
		switch x.Name {
		case "JSHeapUsedSize":
			heap = x.Value
		case "Nodes":
			nodes = x.Value
		}
	}
	return heap, nodes
}
