// fraudstream alerts dashboard. Plain JavaScript, no dependencies, nothing
// loaded from elsewhere:
//   - live feed over server-sent events from /api/v1/stream (EventSource
//     resumes by itself with Last-Event-ID; the server backfills the gap);
//   - alert queue from /api/v1/alerts with disposition buttons;
//   - detail drawer from /api/v1/transactions/{id}: features and reasons;
//   - event-time charts from /api/v1/stats, provisional points dashed until
//     the combined watermark passes their window;
//   - rule editor over GET/PUT /api/v1/rules showing validation errors;
//   - a token login when the server requires one.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const counts = { total: 0, approve: 0, review: 0, decline: 0 };
  const latencies = [];
  // Arrivals per second over the last ARRIVAL_SECONDS whole seconds, in a
  // ring indexed by the second: the rate costs no memory per event.
  const ARRIVAL_SECONDS = 10;
  const arrivals = new Int32Array(ARRIVAL_SECONDS + 1);
  const arrivalSecond = new Float64Array(ARRIVAL_SECONDS + 1);
  const scoreBins = new Array(20).fill(0);
  let paused = false;
  let filter = "all";
  let selected = null;
  let source = null;
  let started = false;

  // ---- helpers ----
  const fmtCache = {};
  function money(minor, currency) {
    let f = fmtCache[currency];
    if (!f) {
      try {
        f = new Intl.NumberFormat(undefined, { style: "currency", currency: currency });
      } catch (e) {
        f = { format: (v) => v.toFixed(2) + " " + currency, resolvedOptions: () => ({ maximumFractionDigits: 2 }) };
      }
      fmtCache[currency] = f;
    }
    return f.format(minor / Math.pow(10, f.resolvedOptions().maximumFractionDigits));
  }
  function time(ts) {
    const d = new Date(ts);
    if (isNaN(d)) return "–";
    return d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(n) {
    return counts.total ? ((100 * n) / counts.total).toFixed(1) + " %" : "–";
  }

  // api calls the analyst API; a 401 shows the login form. Errors carry
  // the RFC 9457 problem document as .problem.
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", credentials: "same-origin", headers: {} };
    if (opts.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const resp = await fetch(path, init);
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (resp.status === 401 && !opts.noLogin) showLogin();
    if (!resp.ok) {
      const err = new Error((body && (body.detail || body.title)) || "HTTP " + resp.status);
      err.status = resp.status;
      err.problem = body || {};
      throw err;
    }
    return body;
  }

  // ---- login ----
  function showLogin() {
    $("login").hidden = false;
    $("login-token").focus();
    if (source) {
      source.close();
      source = null;
    }
  }
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("/api/v1/login", { method: "POST", body: { token: $("login-token").value }, noLogin: true });
      $("login").hidden = true;
      $("login-token").value = "";
      $("logout").hidden = false;
      start();
    } catch (err) {
      $("login-error").textContent = err.status === 401 ? "Wrong token." : "Login failed: " + err.message;
    }
  });
  $("logout").addEventListener("click", async () => {
    await fetch("/api/v1/logout", { method: "POST", credentials: "same-origin" });
    location.reload();
  });

  // ---- tabs ----
  function showTab() {
    const tab = (location.hash || "#live").slice(1);
    for (const p of document.querySelectorAll("[data-panel]")) p.hidden = p.dataset.panel !== tab;
    for (const a of document.querySelectorAll("[data-tab]")) a.classList.toggle("active", a.dataset.tab === tab);
    if (tab === "charts") drawCharts();
    if (tab === "alerts") flushQueue();
  }
  window.addEventListener("hashchange", showTab);

  // ---- counters ----
  function countArrival(now) {
    const sec = Math.floor(now / 1000);
    const i = sec % arrivals.length;
    if (arrivalSecond[i] !== sec) {
      arrivalSecond[i] = sec;
      arrivals[i] = 0;
    }
    arrivals[i]++;
  }
  // arrivalRate is the mean over the last ARRIVAL_SECONDS whole seconds.
  function arrivalRate(now) {
    const sec = Math.floor(now / 1000);
    let n = 0;
    for (let i = 0; i < arrivals.length; i++) {
      if (arrivalSecond[i] < sec && arrivalSecond[i] >= sec - ARRIVAL_SECONDS) n += arrivals[i];
    }
    return n / ARRIVAL_SECONDS;
  }
  function updateCounters() {
    $("n-total").textContent = counts.total.toLocaleString();
    for (const d of ["approve", "review", "decline"]) {
      $("n-" + d).textContent = counts[d].toLocaleString();
      $("p-" + d).textContent = pct(counts[d]);
    }
    $("rate").textContent = arrivalRate(Date.now()).toFixed(1) + " / s (last 10 s)";
    if (latencies.length) {
      const s = latencies.slice().sort((a, b) => a - b);
      const fmt = (v) => (v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(2) + " s");
      $("latency").textContent = fmt(s[Math.floor(s.length / 2)]);
      $("latency-sub").textContent = "ingest → scored, median of last " + s.length + "; p99 " + fmt(s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]);
    }
  }
  setInterval(updateCounters, 1000);

  // ---- live feed ----
  // At a few hundred records a second nobody reads every row, and a page
  // that builds a row per record spends a core on layout. So the feed
  // (docs/design/dashboard.md):
  //   - keeps at most FEED_ROWS row elements, created once and then reused
  //     in place, the oldest moving to the top with the newest record;
  //   - coalesces what arrives between renders, one animation frame at
  //     most every RENDER_INTERVAL ms, listing at most FEED_RATE rows a second (a
  //     token bucket): above that it shows the newest and says how many it
  //     did not list. The counters and the alert queue see every record.
  // Every structure that grows per event is bounded: pendingFeed is a ring
  // of FEED_ROWS records, the arrival rate per-second buckets.
  const FEED_ROWS = 100;
  const FEED_RATE = 20; // rows a second; a human reads fewer
  const RENDER_INTERVAL = 250; // ms between renders of the counters, the feed and the queue
  const feedSlots = []; // {tr, cells…} in no particular order; tbody order is the display order
  const pendingFeed = new Array(FEED_ROWS); // ring of records not yet rendered
  let pendingStart = 0;
  let pendingLen = 0;
  let feedTokens = FEED_ROWS; // the first burst is shown whole
  let feedLast = 0; // time of the last feed render
  let renderLast = 0; // time of the last render
  let frame = 0; // a render is scheduled
  // Per-second counts of what arrived for the feed and what it listed,
  // for the sampling note; and of every record, for the rate.
  const feedIn = new Int32Array(2);
  const feedShown = new Int32Array(2);
  let feedSecond = 0;

  function visible(decision) {
    if (filter === "alerts") return decision !== "approve";
    if (filter === "decline") return decision === "decline";
    return true;
  }
  // newSlot builds one reusable feed row and keeps its cells.
  function newSlot() {
    const s = { tr: el("tr") };
    const text = (cls) => {
      const td = el("td", cls);
      const n = document.createTextNode("");
      td.append(n);
      s.tr.append(td);
      return n;
    };
    s.time = text("");
    s.id = text("id");
    s.card = text("card-id");
    s.amount = text("num");
    s.country = text("");
    s.channel = text("");
    const td = el("td", "num");
    const wrap = el("span", "score");
    const bar = el("span", "bar");
    s.fill = el("span");
    bar.append(s.fill);
    s.score = document.createTextNode("");
    const num = el("span");
    num.append(s.score);
    wrap.append(bar, num);
    td.append(wrap);
    const dtd = el("td");
    s.badge = el("span", "badge");
    s.badgeText = document.createTextNode("");
    s.badge.append(s.badgeText);
    s.late = el("span", "late", "late");
    dtd.append(s.badge, s.late);
    s.tr.append(td, dtd);
    s.tr.feedSlot = s; // an expando: Element.slot is taken
    return s;
  }
  // fill writes rec into a slot's cells in place.
  function fill(s, rec) {
    const t = rec.transaction || {};
    const tr = s.tr;
    tr.dataset.id = t.transaction_id;
    tr.dataset.decision = rec.decision;
    tr.hidden = !visible(rec.decision);
    tr.classList.toggle("selected", selected !== null && selected === t.transaction_id);
    s.time.nodeValue = time(t.event_time);
    s.id.nodeValue = t.transaction_id;
    s.card.nodeValue = t.card_id;
    s.amount.nodeValue = money(t.amount_minor, t.currency);
    s.country.nodeValue = t.merchant_country || "";
    s.channel.nodeValue = (t.channel || "").replace("_", " ");
    s.fill.className = rec.decision;
    s.fill.style.width = Math.round(100 * rec.score) + "%";
    s.score.nodeValue = rec.score.toFixed(3);
    s.badge.className = "badge " + rec.decision;
    s.badgeText.nodeValue = rec.decision;
    s.late.hidden = !rec.late;
  }
  // renderFeed lists the newest n pending records, newest on top, reusing
  // the oldest rows once FEED_ROWS exist; the rest of pending is skipped.
  function renderFeed(n) {
    const rows = $("rows");
    const skip = pendingLen - n;
    for (let i = skip; i < pendingLen; i++) {
      const k = (pendingStart + i) % FEED_ROWS;
      let s;
      if (feedSlots.length < FEED_ROWS) {
        s = newSlot();
        feedSlots.push(s);
      } else {
        s = rows.lastElementChild.feedSlot;
      }
      fill(s, pendingFeed[k]);
      rows.insertBefore(s.tr, rows.firstElementChild);
      pendingFeed[k] = undefined;
    }
    pendingStart = (pendingStart + pendingLen) % FEED_ROWS;
    pendingLen = 0;
    if (n > 0) $("empty").hidden = true;
    return n;
  }
  function secondTick(now) {
    const sec = Math.floor(now / 1000);
    if (sec === feedSecond) return;
    // The note describes the last whole second.
    const gone = sec - feedSecond;
    feedIn[0] = gone === 1 ? feedIn[1] : 0;
    feedShown[0] = gone === 1 ? feedShown[1] : 0;
    feedIn[1] = 0;
    feedShown[1] = 0;
    feedSecond = sec;
    const note = $("feed-sampled");
    const skipped = feedIn[0] - feedShown[0];
    note.hidden = paused || skipped <= 0;
    if (!note.hidden) {
      note.textContent = "listing " + feedShown[0].toLocaleString() + " of " + feedIn[0].toLocaleString() + " / s · " +
        skipped.toLocaleString() + " / s not listed (counted above)";
    }
  }
  // onFrame renders what arrived since the last render: the counters, the
  // feed and the alert queue's new rows, in one animation frame at most
  // every RENDER_INTERVAL ms.
  function onFrame() {
    frame = 0;
    const t = Date.now();
    renderLast = t;
    updateCounters();
    flushQueue();
    if (!paused && pendingLen > 0) {
      feedTokens = Math.min(FEED_ROWS, feedTokens + ((t - feedLast) / 1000) * FEED_RATE);
      feedLast = t;
      const n = Math.min(pendingLen, Math.floor(feedTokens));
      feedTokens -= n;
      feedShown[1] += renderFeed(n);
    }
    secondTick(t);
  }
  // scheduleFrame asks for one render RENDER_INTERVAL after the last: the
  // records arriving until then are coalesced into it.
  function scheduleFrame() {
    if (frame) return;
    frame = setTimeout(() => requestAnimationFrame(onFrame), Math.max(0, renderLast + RENDER_INTERVAL - Date.now()));
  }
  function onScored(ev) {
    let rec;
    try {
      rec = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    counts.total++;
    if (rec.decision in counts) counts[rec.decision]++;
    countArrival(Date.now());
    scoreBins[Math.min(scoreBins.length - 1, Math.floor(rec.score * scoreBins.length))]++;
    const t = rec.transaction || {};
    if (rec.scored_at && t.ingest_time) {
      const l = new Date(rec.scored_at) - new Date(t.ingest_time);
      if (l >= 0) {
        latencies.push(l);
        if (latencies.length > 200) latencies.shift();
      }
    }
    if (rec.decision !== "approve") queueLive(rec);
    if (visible(rec.decision)) {
      feedIn[1]++;
      // The ring keeps the newest FEED_ROWS: the oldest is overwritten.
      pendingFeed[(pendingStart + pendingLen) % FEED_ROWS] = rec;
      if (pendingLen < FEED_ROWS) pendingLen++;
      else pendingStart = (pendingStart + 1) % FEED_ROWS;
    }
    scheduleFrame();
  }
  setInterval(() => secondTick(Date.now()), 1000); // the note also when the stream is quiet
  $("filter").addEventListener("change", (e) => {
    filter = e.target.value;
    for (const tr of $("rows").children) tr.hidden = !visible(tr.dataset.decision);
    pendingLen = 0; // pending records were chosen under the old filter
  });
  $("pause").addEventListener("click", (e) => {
    paused = !paused;
    e.target.setAttribute("aria-pressed", String(paused));
    e.target.textContent = paused ? "Resume" : "Pause";
    setStatus(paused ? "paused" : source && source.readyState === 1 ? "live" : "connecting");
    if (!paused) {
      // The newest records of the pause, at once.
      feedLast = Date.now();
      renderFeed(pendingLen);
    }
  });

  // ---- stream ----
  function setStatus(state) {
    const text = { connecting: "connecting…", live: "live", paused: "paused", down: "reconnecting…" }[state];
    $("status").dataset.state = state;
    $("status-text").textContent = text;
  }
  function connect() {
    if (source) source.close();
    source = new EventSource("/api/v1/stream");
    source.addEventListener("open", () => setStatus(paused ? "paused" : "live"));
    source.addEventListener("error", () => setStatus("down")); // EventSource reconnects by itself
    source.addEventListener("scored", onScored);
    // The server could not fill the gap after a reconnect: reload lists.
    source.addEventListener("reset", () => loadQueue(true));
  }

  // ---- alert queue ----
  let queueCursor = "";
  let queueParams = {};
  let unlabelled = 0;
  // A reset load replaces the queue with a page from the database, which
  // may not hold yet the alerts that streamed in while it was loading (the
  // stream can be ahead of the database sink): those are kept here and put
  // back on top. queueGen drops the answers of loads that a newer reset
  // load overtook.
  let liveDuringLoad = null;
  let queueGen = 0;
  // Live alerts are inserted on top once a render, at most QUEUE_RATE a
  // second and QUEUE_LIVE in all: beyond that the oldest live row leaves the
  // list and is counted in queueGap, which offers a reload (the database has every alert, newest
  // first). So no alert is ever lost from the queue: it is listed or
  // counted, and the badge counts both. queueIds indexes the rows by id.
  const QUEUE_LIVE = 100;
  const QUEUE_RATE = 5; // live rows a second once a burst of QUEUE_LIVE is spent
  let queueTokens = QUEUE_LIVE;
  let queueLast = 0;
  const queueIds = new Map();
  let liveRows = []; // live rows in the list, oldest first; at most QUEUE_LIVE
  const queuePending = []; // alerts for the next frame; at most QUEUE_LIVE
  let queueGap = 0; // unlabelled alerts that arrived but are not listed
  let loadOverflow = 0; // liveDuringLoad's share of queueGap
  function queueQuery() {
    const p = {};
    const d = $("q-decision").value;
    if (d) p.decision = d;
    const c = $("q-card").value.trim();
    if (c) p.card_id = c;
    if ($("q-from").value) p.from = new Date($("q-from").value).toISOString();
    if ($("q-to").value) p.to = new Date($("q-to").value).toISOString();
    return p;
  }
  function matchesQueue(rec) {
    const p = queueParams;
    const t = rec.transaction || {};
    if (p.decision && rec.decision !== p.decision) return false;
    if (p.card_id && t.card_id !== p.card_id) return false;
    if (p.from && new Date(t.event_time) < new Date(p.from)) return false;
    if (p.to && new Date(t.event_time) >= new Date(p.to)) return false;
    return true;
  }
  function dispoButtons(id, label, onDone) {
    const wrap = el("span", "dispo-buttons");
    const mk = (value, cls, text) => {
      const b = el("button", cls, text);
      b.type = "button";
      b.dataset.disposition = value;
      b.setAttribute("aria-pressed", String(!!label && label.disposition === value));
      b.addEventListener("click", async (e) => {
        e.stopPropagation();
        b.disabled = true;
        try {
          const note = onDone && onDone.note ? onDone.note() : "";
          const l = await api("/api/v1/alerts/" + encodeURIComponent(id) + "/disposition", {
            method: "POST",
            body: { disposition: value, note: note },
          });
          for (const o of wrap.querySelectorAll("button")) o.setAttribute("aria-pressed", String(o.dataset.disposition === l.disposition));
          updateLabelEverywhere(id, l);
        } catch (err) {
          alert("Could not store the disposition: " + err.message);
        } finally {
          b.disabled = false;
        }
      });
      return b;
    };
    wrap.append(mk("confirmed_fraud", "fraud", "Fraud"), mk("false_positive", "fp", "Not fraud"));
    return wrap;
  }
  function updateLabelEverywhere(id, l) {
    for (const tr of document.querySelectorAll('#queue tr[data-id="' + CSS.escape(id) + '"]')) {
      if (!tr.dataset.labelled) unlabelled = Math.max(0, unlabelled - 1);
      tr.dataset.labelled = "1";
      for (const o of tr.querySelectorAll(".dispo-buttons button")) o.setAttribute("aria-pressed", String(o.dataset.disposition === l.disposition));
    }
    showQueueCount();
  }
  function showQueueCount() {
    const n = unlabelled + queueGap + queuePending.length;
    $("queue-count").textContent = n ? String(n) : "";
    $("queue-gap").hidden = queueGap === 0;
    if (queueGap) {
      $("queue-gap-text").textContent = queueGap.toLocaleString() + (queueGap === 1 ? " more alert" : " more alerts") +
        " arrived than the queue lists live.";
    }
  }
  function scoreCell(rec) {
    const td = el("td", "num");
    const wrap = el("span", "score");
    const bar = el("span", "bar");
    const fill = el("span", rec.decision);
    fill.style.width = Math.round(100 * rec.score) + "%";
    bar.append(fill);
    wrap.append(bar, el("span", "", rec.score.toFixed(3)));
    td.append(wrap);
    return td;
  }
  function decisionCell(rec) {
    const td = el("td");
    td.append(el("span", "badge " + rec.decision, rec.decision));
    if (rec.late) td.append(el("span", "late", "late"));
    return td;
  }
  function queueRow(item, fresh) {
    const t = item.transaction || {};
    const tr = el("tr", fresh ? "new" : "");
    tr.dataset.id = t.transaction_id;
    queueIds.set(t.transaction_id, tr);
    if (item.label) tr.dataset.labelled = "1";
    else unlabelled++;
    const reasons = (item.reasons || []).map((r) => r.code + (r.shadow ? " (shadow)" : "")).join(", ");
    const dispoTd = el("td");
    dispoTd.append(dispoButtons(t.transaction_id, item.label));
    tr.append(
      el("td", "", new Date(t.event_time).toLocaleString(undefined, { hour12: false })),
      el("td", "id", t.transaction_id),
      el("td", "card-id", t.card_id),
      el("td", "num", money(t.amount_minor, t.currency)),
      scoreCell(item),
      decisionCell(item),
      el("td", "reasons", reasons || "–"),
      dispoTd
    );
    return tr;
  }
  async function loadQueue(reset) {
    if (reset) {
      queueCursor = "";
      queueParams = queueQuery();
      liveDuringLoad = [];
      loadOverflow = 0;
      queueGen++;
    }
    const gen = queueGen;
    const q = new URLSearchParams(queueParams);
    q.set("limit", "50");
    if (queueCursor) q.set("cursor", queueCursor);
    $("queue-error").textContent = "";
    try {
      const page = await api("/api/v1/alerts?" + q.toString());
      if (gen !== queueGen) return; // a newer reset load owns the queue
      if (reset) {
        $("queue").replaceChildren();
        queueIds.clear();
        liveRows = [];
        unlabelled = 0;
      }
      for (const item of page.items) {
        if (!queueIds.has((item.transaction || {}).transaction_id)) $("queue").append(queueRow(item, false));
      }
      if (reset) {
        for (const rec of liveDuringLoad) {
          if (queueIds.has((rec.transaction || {}).transaction_id)) continue;
          const tr = queueRow(rec, true);
          $("queue").prepend(tr);
          liveRows.push(tr);
        }
        liveDuringLoad = null;
        queueGap = loadOverflow;
      }
      queueCursor = page.next_cursor || "";
      $("queue-more").hidden = !queueCursor;
      $("queue-empty").hidden = $("queue").children.length > 0;
      showQueueCount();
    } catch (err) {
      if (reset && gen === queueGen) liveDuringLoad = null; // the live rows stay as they are
      if (err.status !== 401) {
        const fe = (err.problem.errors || []).map((e) => e.pointer + ": " + e.detail).join("\n");
        $("queue-error").textContent = err.message + (fe ? "\n" + fe : "");
      }
    }
  }
  function queueLive(rec) {
    if (!started || !matchesQueue(rec)) return;
    if (liveDuringLoad) {
      if (liveDuringLoad.length >= QUEUE_LIVE) {
        liveDuringLoad.shift();
        loadOverflow++;
      }
      liveDuringLoad.push(rec);
    }
    if (queueIds.has((rec.transaction || {}).transaction_id)) return;
    if (queuePending.length >= QUEUE_LIVE) {
      queuePending.shift(); // it would be evicted in this frame anyway
      queueGap++;
    }
    queuePending.push(rec);
  }
  // flushQueue inserts the alerts that arrived since the last frame, newest
  // on top, at most QUEUE_RATE a second (a token bucket: above that the
  // newest are listed and the others counted in queueGap), and moves the
  // live rows beyond QUEUE_LIVE into queueGap. While
  // the queue is not shown, the alerts wait in queuePending (the badge
  // counts them) and only the newest QUEUE_LIVE become rows.
  function flushQueue() {
    if (!queuePending.length) return;
    if ($("tab-alerts").hidden) {
      showQueueCount();
      return;
    }
    const t = Date.now();
    queueTokens = Math.min(QUEUE_LIVE, queueTokens + ((t - queueLast) / 1000) * QUEUE_RATE);
    queueLast = t;
    const n = Math.min(queuePending.length, Math.floor(queueTokens));
    if (n === 0) return; // they wait for the next token
    queueTokens -= n;
    const skip = queuePending.length - n;
    const frag = document.createDocumentFragment();
    for (let i = 0; i < queuePending.length; i++) {
      const rec = queuePending[i];
      if (queueIds.has((rec.transaction || {}).transaction_id)) continue;
      if (i < skip) {
        queueGap++; // older than the n listed now
        continue;
      }
      const tr = queueRow(rec, skip === 0 && n <= 3); // rows flash only when they come slowly
      frag.prepend(tr);
      liveRows.push(tr);
    }
    queuePending.length = 0;
    $("queue").prepend(frag);
    while (liveRows.length > QUEUE_LIVE) {
      const tr = liveRows.shift();
      if (queueIds.get(tr.dataset.id) === tr) queueIds.delete(tr.dataset.id);
      tr.remove();
      if (!tr.dataset.labelled) {
        unlabelled = Math.max(0, unlabelled - 1);
        queueGap++;
      }
    }
    $("queue-empty").hidden = $("queue").children.length > 0;
    showQueueCount();
  }
  $("queue-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    loadQueue(true);
  });
  $("queue-more").addEventListener("click", () => loadQueue(false));
  $("queue-reload").addEventListener("click", () => loadQueue(true));

  // ---- detail drawer ----
  function highlight(json) {
    const esc = json.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    return esc.replace(
      /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
      (m, str, colon, lit, num) => {
        if (str) return colon ? '<span class="k">' + str + "</span>" + colon : '<span class="s">' + str + "</span>";
        if (lit) return '<span class="b">' + lit + "</span>";
        return '<span class="n">' + num + "</span>";
      }
    );
  }
  function summary(rec) {
    const t = rec.transaction || {};
    const dl = el("dl", "summary");
    const add = (k, v) => dl.append(el("dt", "", k), el("dd", "", v));
    add("Decision", rec.decision + " (score " + rec.score.toFixed(3) + ")");
    add("Amount", money(t.amount_minor, t.currency) + " at " + t.merchant_id + " (" + t.merchant_country + ", MCC " + t.merchant_category + ")");
    add("Card", t.card_id);
    add("Channel", (t.channel || "").replace("_", " "));
    add("Event time", t.event_time);
    if (rec.scored_at) add("Scored at", rec.scored_at);
    add("Versions", "rules v" + rec.rule_set_version + " · model " + rec.model_version);
    return dl;
  }
  function kvRows(table, rows) {
    table.replaceChildren();
    for (const [k, v] of rows) {
      const tr = el("tr");
      tr.append(el("td", "", k), el("td", "", v));
      table.append(tr);
    }
  }
  async function show(id, attempt) {
    $("drawer-title").textContent = id;
    $("drawer-summary").replaceChildren();
    $("drawer-dispo").replaceChildren();
    $("drawer-reasons").replaceChildren();
    $("drawer-features").replaceChildren();
    $("drawer-json").textContent = "Loading…";
    $("drawer").classList.add("open");
    $("drawer").setAttribute("aria-hidden", "false");
    try {
      const body = await api("/api/v1/transactions/" + encodeURIComponent(id));
      if (selected !== id) return;
      $("drawer-summary").replaceChildren(summary(body));
      const note = el("input");
      note.placeholder = "note (optional)";
      note.id = "drawer-note";
      if (body.label) note.value = body.label.note || "";
      $("drawer-dispo").append(dispoButtons(id, body.label, { note: () => note.value }), note);
      const reasons = (body.reasons || []).map((r) => [
        r.code,
        r.source + ", weight " + r.weight.toFixed(2) + (r.shadow ? ", shadow" : "") + (r.detail ? " — " + r.detail : ""),
      ]);
      kvRows($("drawer-reasons"), reasons.length ? reasons : [["–", "no reasons"]]);
      kvRows($("drawer-features"), Object.entries(body.features || {}).map(([k, v]) => [k, typeof v === "number" ? String(Math.round(v * 1000) / 1000) : String(v)]));
      $("drawer-json").innerHTML = highlight(JSON.stringify(body, null, 2));
    } catch (err) {
      if (selected !== id) return;
      if (err.status === 404 && attempt < 10) {
        // The live feed can be ahead of the database by a batch.
        $("drawer-json").textContent = "Not stored yet, retrying…";
        setTimeout(() => show(id, attempt + 1), 500);
        return;
      }
      $("drawer-json").textContent = "Could not load: " + err.message;
    }
  }
  function closeDrawer() {
    $("drawer").classList.remove("open");
    $("drawer").setAttribute("aria-hidden", "true");
    for (const tr of document.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    selected = null;
  }
  for (const body of [$("rows"), $("queue")]) {
    body.addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (!tr || e.target.closest("button")) return;
      for (const s of document.querySelectorAll("tr.selected")) s.classList.remove("selected");
      tr.classList.add("selected");
      selected = tr.dataset.id;
      show(selected, 0);
    });
  }
  $("drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeDrawer();
  });

  // ---- charts ----
  let stats = null;
  const colors = { line: "#3056d3", p99: "#b91c1c", decline: "#b91c1c", grid: "#e4e7ec", ink: "#6b7280" };
  function setupCanvas(c) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 560;
    const h = c.clientHeight || 200;
    if (c.width !== Math.round(w * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx, w, h, pad: { l: 44, r: 24, t: 10, b: 22 } };
  }
  function axes(g, yMax, fmt, labels) {
    const { ctx, w, h, pad } = g;
    ctx.strokeStyle = colors.grid;
    ctx.fillStyle = colors.ink;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.l, y);
      ctx.lineTo(w - pad.r, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(fmt(yMax * (1 - i / 4)), pad.l - 6, y + 4);
    }
    ctx.textAlign = "center";
    const n = labels.length;
    const step = Math.max(1, Math.ceil(n / 6));
    for (let i = 0; i < n; i += step) ctx.fillText(labels[i], xAt(g, i, n), h - 6);
  }
  function xAt(g, i, n) {
    const { w, pad } = g;
    return n <= 1 ? (pad.l + w - pad.r) / 2 : pad.l + ((w - pad.l - pad.r) * i) / (n - 1);
  }
  function yAt(g, v, yMax) {
    const { h, pad } = g;
    return pad.t + (h - pad.t - pad.b) * (1 - (yMax ? v / yMax : 0));
  }
  // line draws one series; a segment or point in a provisional window is
  // dashed and faded, a final one solid.
  function line(g, values, provisional, color, yMax) {
    const { ctx } = g;
    const n = values.length;
    ctx.lineWidth = 2;
    for (let i = 1; i < n; i++) {
      const prov = provisional[i] || provisional[i - 1];
      ctx.strokeStyle = color;
      ctx.globalAlpha = prov ? 0.45 : 1;
      ctx.setLineDash(prov ? [5, 4] : []);
      ctx.beginPath();
      ctx.moveTo(xAt(g, i - 1, n), yAt(g, values[i - 1], yMax));
      ctx.lineTo(xAt(g, i, n), yAt(g, values[i], yMax));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    for (let i = 0; i < n; i++) {
      ctx.globalAlpha = provisional[i] ? 0.55 : 1;
      ctx.beginPath();
      ctx.arc(xAt(g, i, n), yAt(g, values[i], yMax), 3, 0, 2 * Math.PI);
      if (provisional[i]) {
        ctx.fillStyle = "#fff";
        ctx.fill();
        ctx.strokeStyle = color;
        ctx.lineWidth = 1.5;
        ctx.stroke();
      } else {
        ctx.fillStyle = color;
        ctx.fill();
      }
    }
    ctx.globalAlpha = 1;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function lineChart(id, windows, series, fmt, fixedMax) {
    const c = $(id);
    const g = setupCanvas(c);
    const labels = windows.map((w) => new Date(w.window_start).toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit" }));
    let yMax = fixedMax || niceMax(Math.max(0, ...series.flatMap((s) => windows.map(s.value))));
    axes(g, yMax, fmt, labels);
    const prov = windows.map((w) => w.provisional);
    for (const s of series) line(g, windows.map(s.value), prov, s.color, yMax);
    c.dataset.points = String(windows.length);
    c.dataset.provisional = String(prov.filter(Boolean).length);
  }
  function barChart(id, labels, values, fmt, color) {
    const c = $(id);
    const g = setupCanvas(c);
    const yMax = niceMax(Math.max(0, ...values));
    axes(g, yMax, fmt, labels);
    const { ctx, w, pad } = g;
    const n = values.length;
    const bw = Math.max(2, ((w - pad.l - pad.r) / Math.max(n, 1)) * 0.7);
    ctx.fillStyle = color;
    values.forEach((v, i) => {
      const x = n <= 1 ? xAt(g, 0, 1) : pad.l + ((w - pad.l - pad.r) * (i + 0.5)) / n;
      const y = yAt(g, v, yMax);
      ctx.fillRect(x - bw / 2, y, bw, yAt(g, 0, yMax) - y);
    });
    c.dataset.points = String(values.filter((v) => v > 0).length);
  }
  function drawCharts() {
    if ($("tab-charts").hidden) return;
    const total = scoreBins.reduce((a, b) => a + b, 0);
    barChart("chart-scores", scoreBins.map((_, i) => (i / scoreBins.length).toFixed(2)), scoreBins, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)), "#3056d3");
    $("chart-scores").dataset.total = String(total);
    if (!stats) return;
    const ws = stats.windows || [];
    $("charts-empty").hidden = ws.length > 0;
    $("wm-text").textContent = "combined watermark: " + (stats.combined_watermark ? new Date(stats.combined_watermark).toLocaleString(undefined, { hour12: false }) : "–");
    lineChart("chart-throughput", ws, [{ value: (w) => w.count, color: colors.line }], (v) => String(Math.round(v)));
    lineChart("chart-decline", ws, [{ value: (w) => w.decline_rate, color: colors.decline }], (v) => (100 * v).toFixed(0) + "%", niceMax(Math.max(0.01, ...ws.map((w) => w.decline_rate))));
    lineChart("chart-latency", ws, [
      { value: (w) => w.latency_p50_ms, color: colors.line },
      { value: (w) => w.latency_p99_ms, color: colors.p99 },
    ], (v) => String(Math.round(v)));
    const parts = stats.partitions || [];
    barChart("chart-lag", parts.map((p) => "p" + p.partition), parts.map((p) => (p.watermark ? p.lag_ms / 1000 : 0)), (v) => v.toFixed(1), "#b45309");
  }
  async function pollStats() {
    try {
      stats = await api("/api/v1/stats");
      drawCharts();
    } catch (err) {
      // keep the last charts; a 401 has shown the login
    }
  }
  window.addEventListener("resize", drawCharts);

  // ---- rules ----
  const FEATURES = ["count_1m", "count_10m", "count_1h", "count_24h", "sum_1h", "sum_24h", "distinct_merchants_1h",
    "distinct_countries_24h", "small_count_10m", "secs_since_prev", "km_from_prev", "kmh_from_prev", "arrival_kmh",
    "amount_zscore", "amount_ratio",
    "new_country", "new_merchant", "home_country_mismatch", "account_age_days", "risk_tier", "profile_missing"];
  $("feature-names").textContent = FEATURES.join(", ");
  let ruleSet = { version: 0, rules: [] };
  const RULE_FIELDS = [
    ["id", "input", ""],
    ["expression", "input", "expr"],
    ["weight", "number", ""],
    ["reason_code", "input", ""],
    ["mode", "select", ""],
  ];
  function ruleRow(r, i) {
    const row = el("div", "rule");
    row.dataset.index = String(i);
    for (const [name, kind, cls] of RULE_FIELDS) {
      let input;
      if (kind === "select") {
        input = el("select");
        for (const m of ["active", "shadow"]) {
          const o = el("option", "", m);
          o.value = m;
          input.append(o);
        }
        input.value = r.mode || "active";
      } else {
        input = el("input", cls);
        if (kind === "number") {
          input.type = "number";
          input.step = "0.05";
          input.min = "0";
          input.max = "1";
        }
        input.value = r[name] === undefined ? "" : String(r[name]);
      }
      input.name = name;
      input.setAttribute("aria-label", name.replace("_", " "));
      row.append(input);
    }
    const del = el("button", "", "×");
    del.type = "button";
    del.title = "Remove rule";
    del.addEventListener("click", () => {
      row.remove();
      renumber();
    });
    row.append(del);
    return row;
  }
  function renumber() {
    [...$("rules-list").querySelectorAll(".rule[data-index]")].forEach((r, i) => (r.dataset.index = String(i)));
  }
  function renderRules() {
    const head = el("div", "rule head");
    for (const t of ["id", "expression", "weight", "reason code", "mode", ""]) head.append(el("span", "", t));
    $("rules-list").replaceChildren(head, ...ruleSet.rules.map(ruleRow));
    $("rules-version").textContent = ruleSet.version ? "version " + ruleSet.version + (ruleSet.updated_by ? " by " + ruleSet.updated_by : "") : "no rule set published yet";
  }
  function collectRules() {
    return [...$("rules-list").querySelectorAll(".rule[data-index]")].map((row) => {
      const v = (n) => row.querySelector('[name="' + n + '"]').value;
      const r = { id: v("id").trim(), expression: v("expression"), weight: Number(v("weight")), reason_code: v("reason_code").trim(), mode: v("mode") };
      const d = ruleSet.rules[Number(row.dataset.index)];
      if (d && d.description) r.description = d.description;
      return r;
    });
  }
  function clearRuleErrors() {
    for (const e of $("rules-list").querySelectorAll(".field-error")) e.remove();
    for (const e of $("rules-list").querySelectorAll(".invalid")) e.classList.remove("invalid");
    $("rules-error").textContent = "";
    $("rules-ok").textContent = "";
  }
  function showRuleErrors(problem) {
    const general = [];
    for (const fe of problem.errors || []) {
      const m = /^\/rules\/(\d+)\/(\w+)$/.exec(fe.pointer || "");
      const row = m && $("rules-list").querySelector('.rule[data-index="' + m[1] + '"]');
      if (!row) {
        general.push((fe.pointer || "rule set") + ": " + fe.detail);
        continue;
      }
      const input = row.querySelector('[name="' + m[2] + '"]');
      if (input) input.classList.add("invalid");
      row.append(el("div", "field-error", m[2].replace("_", " ") + ": " + fe.detail));
    }
    $("rules-error").textContent = [problem.detail || problem.title || "Not published."].concat(general).join("\n");
  }
  async function loadRules() {
    clearRuleErrors();
    try {
      ruleSet = await api("/api/v1/rules");
      ruleSet.rules = ruleSet.rules || [];
      renderRules();
    } catch (err) {
      if (err.status !== 401) $("rules-error").textContent = "Could not load the rules: " + err.message;
    }
  }
  $("rules-reload").addEventListener("click", loadRules);
  $("rules-add").addEventListener("click", () => {
    const n = $("rules-list").querySelectorAll(".rule[data-index]").length;
    $("rules-list").append(ruleRow({ id: "", expression: "", weight: 0.5, reason_code: "", mode: "shadow" }, n));
  });
  $("rules-save").addEventListener("click", async () => {
    clearRuleErrors();
    $("rules-save").disabled = true;
    try {
      const body = { version: ruleSet.version, rules: collectRules() };
      const out = await api("/api/v1/rules", { method: "PUT", body: body });
      ruleSet = out;
      renderRules();
      $("rules-ok").textContent = "Published version " + out.version + ".";
    } catch (err) {
      if (err.status === 409) $("rules-error").textContent = err.message + " Reload to see it, then apply your change again.";
      else if (err.status !== 401) showRuleErrors(err.problem);
    } finally {
      $("rules-save").disabled = false;
    }
  });

  // ---- start ----
  // start (again, after a login) streams and loads everything.
  function start() {
    if (!started) {
      started = true;
      setInterval(() => {
        if ($("login").hidden) pollStats();
      }, 3000);
      setInterval(drawCharts, 1000);
    }
    connect();
    loadQueue(true);
    loadRules();
    pollStats();
  }
  showTab();
  api("/api/v1/auth", { noLogin: true })
    .then((a) => {
      $("logout").hidden = !a.required;
      if (a.required && !a.authenticated) showLogin();
      else start();
    })
    .catch(() => start());
})();
