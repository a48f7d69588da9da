package alerts

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudstream/fraudstream/pkg/event"
)

// Browser tests drive Debian's chromium headless through chromedp, with
// the flags of docs/design/testing.md: nothing is resolved outside this
// machine. Without chromium they skip, except under CI=true.

// chromiumPath finds the browser.
func chromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium", nil
	}
	return "", fmt.Errorf("no chromium on PATH nor at /usr/bin/chromium")
}

// NewBrowser returns a chromedp context of a fresh headless chromium, with
// a new user data dir, closed when the test ends. It is exported for the
// external pipeline test in this package's test binary.
func NewBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser test: %v (CI=true: apt-get install chromium)", err)
		}
		t.Skipf("browser test: %v (install chromium; under CI=true this fails)", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser with a context without deadline (a deadline on the
	// first run would bound the browser's whole life).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Every page the test opens must work under the dashboard's
	// Content-Security-Policy: a violation (an inline script or style, a
	// foreign source) fails the test.
	if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument,
		cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: recordCSPViolations}); err != nil {
		t.Fatalf("install the CSP violation recorder: %v", err)
	}
	t.Cleanup(func() {
		if v := CSPViolations(t, ctx); len(v) > 0 {
			t.Errorf("Content-Security-Policy violations: %s", strings.Join(v, "; "))
		}
	})
	return ctx
}

// recordCSPViolations keeps the page's CSP violations in sessionStorage,
// which outlives reloads of the tab.
const recordCSPViolations = `document.addEventListener("securitypolicyviolation", (e) => {
  try {
    const v = JSON.parse(sessionStorage.getItem("__csp") || "[]");
    v.push(e.effectiveDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
    sessionStorage.setItem("__csp", JSON.stringify(v));
  } catch (err) {}
});`

// CSPViolations returns the CSP violations the current tab has recorded.
func CSPViolations(t *testing.T, ctx context.Context) []string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[[]string](`(() => { try { return JSON.parse(sessionStorage.getItem("__csp") || "[]") } catch (e) { return [] } })()`))
	if err != nil {
		t.Logf("read CSP violations: %v", err)
		return nil
	}
	return v
}

// Do runs browser steps, bounded, failing the test with what.
func Do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		Screenshot(t, ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

// JS is an action that runs a JavaScript statement.
func JS(stmt string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](stmt+"; true")(ctx, tg)
		return chromedp.Void{}, err
	}
}

// WaitJS waits until a JavaScript expression is truthy.
func WaitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		Screenshot(t, ctx, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// EvalJS returns the value of a JavaScript expression.
func EvalJS[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// ArtifactsDir is where screenshots go: $ARTIFACTS_DIR, or
// testdata/artifacts (ignored by git).
func ArtifactsDir(t *testing.T) string {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot saves a full-page PNG named after the test and name.
func Screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(ArtifactsDir(t), strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	t.Logf("screenshot: %s", file)
}

func TestDashboardInBrowser(t *testing.T) {
	ctx := NewBrowser(t)
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	base := "http://" + svc.Addr()
	p := newProducer(t, brokers)

	// Records from before the page opened are in the queue from the database.
	now := time.Now().UTC()
	old := record("br-old", "card-old", event.DecisionReview, now.Add(-time.Minute), 0)
	p.txn(true, old)
	waitCount(t, svc.Store(), 1)

	t.Run("page loads and goes live", func(t *testing.T) {
		Do(t, ctx, "open dashboard", chromedp.Navigate(base+"/"))
		WaitJS(t, ctx, "live status", `document.getElementById("status").dataset.state === "live"`)
		if title := EvalJS[string](t, ctx, `document.title`); !strings.Contains(title, "fraudstream") {
			t.Fatalf("title = %q", title)
		}
	})
	t.Run("a scored transaction appears live", func(t *testing.T) {
		rec := record("br-live-1", "card-b1", event.DecisionDecline, now, 1)
		setReasons(t, rec, event.Reason{Code: "VELOCITY_1M", Source: event.SourceRule, Weight: 0.9, Detail: "count_1m=7 >= 5"})
		p.txn(true, rec)
		WaitJS(t, ctx, "live row", `!!document.querySelector('#rows tr[data-id="br-live-1"]')`)
		Screenshot(t, ctx, "live")
	})
	t.Run("disposition persists across reload", func(t *testing.T) {
		Do(t, ctx, "open queue", JS(`location.hash = "#alerts"`))
		WaitJS(t, ctx, "queue row", `!!document.querySelector('#queue tr[data-id="br-old"]')`)
		WaitJS(t, ctx, "live queue row", `!!document.querySelector('#queue tr[data-id="br-live-1"]')`)
		Do(t, ctx, "click fraud", chromedp.Click(chromedp.CSS(`#queue tr[data-id="br-live-1"] button.fraud`), chromedp.NodeVisible))
		WaitJS(t, ctx, "pressed", `document.querySelector('#queue tr[data-id="br-live-1"] button.fraud').getAttribute("aria-pressed") === "true"`)
		l, err := svc.Store().Label(context.Background(), "br-live-1")
		if err != nil || l.Disposition != DispositionConfirmedFraud {
			t.Fatalf("stored label = %+v, %v", l, err)
		}
		Do(t, ctx, "reload", chromedp.Reload())
		WaitJS(t, ctx, "pressed after reload", `(() => { const b = document.querySelector('#queue tr[data-id="br-live-1"] button.fraud'); return !!b && b.getAttribute("aria-pressed") === "true" })()`)
		if fp := EvalJS[string](t, ctx, `document.querySelector('#queue tr[data-id="br-live-1"] button.fp').getAttribute("aria-pressed")`); fp != "false" {
			t.Fatalf("false-positive button pressed = %s", fp)
		}
		Screenshot(t, ctx, "queue")
	})
	t.Run("detail shows features and reasons", func(t *testing.T) {
		Do(t, ctx, "open detail", chromedp.Click(chromedp.CSS(`#queue tr[data-id="br-live-1"] td.id`), chromedp.NodeVisible))
		WaitJS(t, ctx, "features", `document.querySelectorAll("#drawer-features tr").length >= 10`)
		WaitJS(t, ctx, "reason", `document.getElementById("drawer-reasons").textContent.includes("VELOCITY_1M")`)
		if txt := EvalJS[string](t, ctx, `document.getElementById("drawer-features").textContent`); !strings.Contains(txt, "amount_zscore") {
			t.Fatalf("features table lacks amount_zscore: %q", txt)
		}
		Screenshot(t, ctx, "detail")
		// The drawer slides in (.18s): a click computed while it moves
		// lands where the button was, so wait until it is in place.
		WaitJS(t, ctx, "drawer in place", `document.getElementById("drawer").getBoundingClientRect().right <= window.innerWidth + 1`)
		Do(t, ctx, "close detail", chromedp.Click(chromedp.ID("drawer-close")))
		WaitJS(t, ctx, "drawer out of the way", `document.getElementById("drawer").getBoundingClientRect().left >= window.innerWidth`)
	})
	t.Run("a bad rule expression shows its error", func(t *testing.T) {
		Do(t, ctx, "open rules", JS(`location.hash = "#rules"`))
		WaitJS(t, ctx, "rules loaded", `document.getElementById("rules-version").textContent !== ""`)
		Do(t, ctx, "add rule", chromedp.Click(chromedp.ID("rules-add"), chromedp.NodeVisible))
		WaitJS(t, ctx, "new rule row", `!!document.querySelector('#rules-list .rule[data-index="0"] [name="id"]')`)
		// Typed as a user would: values into the new row's inputs.
		field := func(name, value string) chromedp.Action[chromedp.Void] {
			return JS(fmt.Sprintf(`document.querySelector('#rules-list .rule[data-index="0"] [name=%q]').value = %q`, name, value))
		}
		Do(t, ctx, "fill rule",
			field("id", "two_minutes"),
			field("expression", "count_2m > 3"),
			field("reason_code", "VELOCITY_2M"),
			chromedp.Click(chromedp.ID("rules-save"), chromedp.NodeVisible),
		)
		WaitJS(t, ctx, "field error", `!!document.querySelector('#rules-list .rule[data-index="0"] .field-error')`)
		msg := EvalJS[string](t, ctx, `document.querySelector('#rules-list .rule[data-index="0"] .field-error').textContent`)
		if !strings.Contains(msg, "expression") || !strings.Contains(msg, "count_2m") {
			t.Fatalf("error shown = %q, want the expression's compile error naming count_2m", msg)
		}
		if cls := EvalJS[string](t, ctx, `document.querySelector('#rules-list .rule[data-index="0"] [name="expression"]').className`); !strings.Contains(cls, "invalid") {
			t.Fatalf("expression input not marked invalid: %q", cls)
		}
		Screenshot(t, ctx, "rules-error")
		// Fixed, it publishes version 1.
		Do(t, ctx, "fix rule", field("expression", "count_10m >= 8"), chromedp.Click(chromedp.ID("rules-save"), chromedp.NodeVisible))
		WaitJS(t, ctx, "published", `document.getElementById("rules-ok").textContent.includes("version 1")`)
	})
	t.Run("charts render", func(t *testing.T) {
		w0 := now.Truncate(time.Minute).Add(-6 * time.Minute)
		var recs []*kgo.Record
		for w := range 6 {
			for part := range int32(testPartitions) {
				wm := w0.Add(time.Duration(w+1) * time.Minute)
				if part == 2 && w >= 3 {
					continue // partition 2 lags: windows 3+ stay provisional
				}
				s := event.Stats{Partition: part, WindowStart: w0.Add(time.Duration(w) * time.Minute), WindowEnd: wm,
					Count: int64(20 + 5*w), Approved: int64(15 + 5*w), Review: 3, Declined: 2, Watermark: wm,
					LatencyP50Ms: 12 + float64(w), LatencyP99Ms: 60 + 4*float64(w)}
				v, _ := s.Encode()
				recs = append(recs, &kgo.Record{Topic: event.TopicStats, Key: s.Key(), Value: v, Partition: part})
			}
		}
		p.txn(true, recs...)
		Do(t, ctx, "open charts", JS(`location.hash = "#charts"`))
		// Live records fill the score distribution.
		var live []*kgo.Record
		for i := range 40 {
			r := record(fmt.Sprintf("br-score-%d", i), "card-s", event.DecisionApprove, now, int32(i%testPartitions))
			sc, _ := event.DecodeScored(r.Value)
			sc.Score = float64(i%10)/10 + 0.05
			r.Value, _ = sc.Encode()
			live = append(live, r)
		}
		p.txn(true, live...)
		WaitJS(t, ctx, "score histogram", `document.getElementById("chart-scores").dataset.total === "40"`)
		WaitJS(t, ctx, "throughput points", `document.getElementById("chart-throughput").dataset.points === "6"`)
		if prov := EvalJS[string](t, ctx, `document.getElementById("chart-throughput").dataset.provisional`); prov != "3" {
			t.Errorf("provisional windows drawn = %s, want 3", prov)
		}
		for _, id := range []string{"chart-throughput", "chart-decline", "chart-latency", "chart-lag", "chart-scores"} {
			inked := EvalJS[float64](t, ctx, fmt.Sprintf(`(() => { const c = document.getElementById(%q);
				const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; let n = 0;
				for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })()`, id))
			if inked < 200 {
				t.Errorf("%s has %v drawn pixels: empty chart", id, inked)
			}
		}
		Screenshot(t, ctx, "charts")
	})
}

func setReasons(t *testing.T, r *kgo.Record, reasons ...event.Reason) {
	s, err := event.DecodeScored(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	s.Reasons = reasons
	r.Value, _ = s.Encode()
}

func TestDashboardLoginInBrowser(t *testing.T) {
	ctx := NewBrowser(t)
	brokers := newCluster(t)
	cfg := testConfig(brokers, sqliteURL(t))
	cfg.Token = "browser-test-token-0123"
	svc := start(t, cfg, nil)
	base := "http://" + svc.Addr()

	Do(t, ctx, "open dashboard", chromedp.Navigate(base+"/"))
	WaitJS(t, ctx, "login form", `!document.getElementById("login").hidden`)
	Screenshot(t, ctx, "login")
	login := func(token string) chromedp.Action[chromedp.Void] {
		return JS(fmt.Sprintf(`document.getElementById("login-token").value = %q; document.querySelector("#login-form button").click()`, token))
	}
	Do(t, ctx, "wrong token", login("wrong-token"))
	WaitJS(t, ctx, "login error", `document.getElementById("login-error").textContent.includes("Wrong token")`)
	Do(t, ctx, "right token", login(cfg.Token))
	WaitJS(t, ctx, "logged in and live", `document.getElementById("login").hidden && document.getElementById("status").dataset.state === "live"`)
	// The session cookie survives a reload; the API answers without a header.
	Do(t, ctx, "reload", chromedp.Reload())
	WaitJS(t, ctx, "still live", `document.getElementById("login").hidden && document.getElementById("status").dataset.state === "live"`)
	if code := EvalJS[float64](t, ctx, `(async () => (await fetch("/api/v1/alerts")).status)()`, chromedp.EvalAwaitPromise); code != http.StatusOK {
		t.Fatalf("API with the session cookie = %v", code)
	}
	// Logging out ends the session: the page asks for the token again.
	// The page reloads: wait on the DOM, which chromedp queries again in
	// the new document, rather than on a script of the old one.
	Do(t, ctx, "log out", chromedp.Click(chromedp.ID("logout"), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.ID("login-token")))
	if code := EvalJS[float64](t, ctx, `(async () => (await fetch("/api/v1/alerts")).status)()`, chromedp.EvalAwaitPromise); code != http.StatusUnauthorized {
		t.Fatalf("API after logout = %v, want 401", code)
	}
}

// holdAlertsScript makes the page's /api/v1/alerts answers wait, after
// they have arrived, until the test sets window.__holdAlerts to false; it
// sets window.__alertsHeld while one waits.
const holdAlertsScript = `(() => {
  const real = window.fetch;
  window.__holdAlerts = true;
  window.fetch = async (input, init) => {
    const resp = await real(input, init);
    const url = typeof input === "string" ? input : input.url;
    if (url.includes("/api/v1/alerts?")) {
      window.__alertsHeld = true;
      while (window.__holdAlerts) await new Promise((r) => setTimeout(r, 20));
    }
    return resp;
  };
})();`

// TestQueueKeepsAlertsThatStreamInWhileItLoads: the live stream can be
// ahead of the database sink, so an alert may stream in while the queue's
// page from the database, which lacks it, is still loading. The queue
// must still show it once the page is in.
func TestQueueKeepsAlertsThatStreamInWhileItLoads(t *testing.T) {
	ctx := NewBrowser(t)
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	p := newProducer(t, brokers)
	now := time.Now().UTC()
	p.txn(true, record("held-old", "card-h0", event.DecisionReview, now.Add(-time.Minute), 0))
	waitCount(t, svc.Store(), 1)

	if _, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument,
		cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: holdAlertsScript}); err != nil {
		t.Fatal(err)
	}
	Do(t, ctx, "open queue", chromedp.Navigate("http://"+svc.Addr()+"/#alerts"))
	WaitJS(t, ctx, "live status", `document.getElementById("status").dataset.state === "live"`)
	WaitJS(t, ctx, "queue page held", `window.__alertsHeld === true`)

	p.txn(true, record("held-live", "card-h1", event.DecisionDecline, now, 1))
	WaitJS(t, ctx, "live feed row", `!!document.querySelector('#rows tr[data-id="held-live"]')`)
	Do(t, ctx, "release the page", JS(`window.__holdAlerts = false`))
	WaitJS(t, ctx, "queue page in", `!!document.querySelector('#queue tr[data-id="held-old"]')`)

	rows := EvalJS[int](t, ctx, `document.querySelectorAll('#queue tr[data-id="held-live"]').length`)
	badge := EvalJS[string](t, ctx, `document.getElementById("queue-count").textContent`)
	if rows != 1 || badge != "2" {
		Screenshot(t, ctx, "queue")
		t.Fatalf("queue has %d rows of the streamed alert and badge %q, want 1 and \"2\"", rows, badge)
	}
}

// TestQueueCountsTheAlertsItDoesNotList: the queue lists at most 100 live
// alerts; the others stay counted (badge and a note) until a reload lists
// them from the database, newest first, with paging to the rest. No alert
// is lost from the queue.
func TestQueueCountsTheAlertsItDoesNotList(t *testing.T) {
	ctx := NewBrowser(t)
	brokers := newCluster(t)
	svc := start(t, testConfig(brokers, sqliteURL(t)), nil)
	p := newProducer(t, brokers)

	Do(t, ctx, "open queue", chromedp.Navigate("http://"+svc.Addr()+"/#alerts"))
	WaitJS(t, ctx, "live status", `document.getElementById("status").dataset.state === "live"`)
	WaitJS(t, ctx, "empty queue loaded", `!document.getElementById("queue-empty").hidden`)

	now := time.Now().UTC()
	var recs []*kgo.Record
	for i := range 150 {
		recs = append(recs, record(fmt.Sprintf("gap-%03d", i), fmt.Sprintf("card-g%d", i%7), event.DecisionReview,
			now.Add(time.Duration(i)*time.Millisecond), int32(i%testPartitions)))
	}
	p.txn(true, recs...)
	WaitJS(t, ctx, "badge counts every alert", `document.getElementById("queue-count").textContent === "150"`)
	WaitJS(t, ctx, "100 rows listed", `document.querySelectorAll("#queue tr").length === 100`)
	if gap := EvalJS[string](t, ctx, `document.getElementById("queue-gap").hidden ? "(hidden)" : document.getElementById("queue-gap-text").textContent`); !strings.HasPrefix(gap, "50 more alerts arrived") {
		t.Fatalf("gap note = %q, want 50 more alerts", gap)
	}
	Screenshot(t, ctx, "gap")

	// The reload lists them from the database: the newest page, and paging
	// reaches every one.
	waitCount(t, svc.Store(), 150)
	Do(t, ctx, "reload the queue", chromedp.Click(chromedp.ID("queue-reload"), chromedp.NodeVisible))
	WaitJS(t, ctx, "gap note gone", `document.getElementById("queue-gap").hidden`)
	for n := 50; n < 150; n += 50 {
		WaitJS(t, ctx, fmt.Sprintf("page of %d rows", n), fmt.Sprintf(`document.querySelectorAll("#queue tr").length === %d && !document.getElementById("queue-more").hidden`, n))
		Do(t, ctx, "load older", chromedp.Click(chromedp.ID("queue-more"), chromedp.NodeVisible))
	}
	WaitJS(t, ctx, "every alert listed", `document.querySelectorAll("#queue tr").length === 150`)
	ids := EvalJS[[]string](t, ctx, `[...document.querySelectorAll("#queue tr")].map((tr) => tr.dataset.id)`)
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	for i := range 150 {
		if id := fmt.Sprintf("gap-%03d", i); !seen[id] {
			t.Errorf("alert %s is not in the queue after the reload and paging", id)
		}
	}
	if len(ids) != 150 {
		t.Errorf("queue lists %d rows, want 150", len(ids))
	}
}
