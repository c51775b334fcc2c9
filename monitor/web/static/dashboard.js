// mood-monitor dashboard: plain JavaScript, no build step, no inline script (the page's CSP
// allows scripts from this origin only). Post texts are untrusted: they are shown with
// textContent, never as HTML, and only http(s) links are made.
//
// State lives in the URL (?topic=&range= or &from=&to= in epoch ms, &tz=local), so a link from
// a Slack alert opens the right topic and range. One EventSource (/api/v1/stream) brings
// changes; the page never reloads.
"use strict";

(function () {
  const RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 86400e3 };
  const EMOTIONS = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"];
  const COLORS = { negative: "#d64545", neutral: "#8a94a6", positive: "#2f9e62", volume: "#3f6fd8", net: "#1d2430" };
  const STALE_S = 30;

  const $ = (id) => document.getElementById(id);
  const state = readUrl();
  let overview = [];
  let series = null;
  let alertsData = { open: [], past: [] };
  const charts = {};
  let paused = false;
  let bucket = null;
  let source = null;
  let lost = false;
  let sortKey = "posts";
  let sortDir = -1;
  let lastPostsFetch = 0;
  let lastPostsCount = -1;
  let lastSeriesFetch = 0;

  // ---- state in the URL ---------------------------------------------------------------------
  function num(v) {
    const n = Number(v);
    return v && Number.isFinite(n) && n > 0 ? n : null;
  }

  function readUrl() {
    const q = new URLSearchParams(location.search);
    const s = {
      topic: q.get("topic") || "",
      range: q.get("range") || "1h",
      from: num(q.get("from")),
      to: num(q.get("to")),
      tz: q.get("tz") === "local" ? "local" : "utc",
    };
    if (!(s.range in RANGES)) s.range = "1h";
    if (s.from && s.to && s.from < s.to) s.range = "";
    else s.from = s.to = null;
    return s;
  }

  function writeUrl() {
    const q = new URLSearchParams();
    if (state.topic) q.set("topic", state.topic);
    if (state.range) q.set("range", state.range);
    else {
      q.set("from", String(state.from));
      q.set("to", String(state.to));
    }
    if (state.tz === "local") q.set("tz", "local");
    history.replaceState(null, "", "?" + q.toString());
  }

  function span() {
    if (state.range) {
      const to = Date.now();
      return { from: to - RANGES[state.range], to: to, live: true };
    }
    return { from: state.from, to: state.to, live: false };
  }

  const stepFor = (ms) => (ms <= 24 * 3600e3 ? "1m" : "1h");
  const stepMs = (step) => (step === "1h" ? 3600e3 : 60e3);

  // ---- small helpers --------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function testid(e, id, value, topic) {
    e.setAttribute("data-testid", id);
    if (value !== undefined) e.setAttribute("data-value", String(value));
    if (topic !== undefined) e.setAttribute("data-topic", topic);
    return e;
  }

  const pct = (x) => (x * 100).toFixed(0) + "%";
  const signed = (x, digits) => (x > 0 ? "+" : "") + x.toFixed(digits);

  function fmtTime(ms, withDate) {
    const d = new Date(ms);
    if (state.tz === "utc") {
      const iso = d.toISOString();
      return withDate ? iso.slice(0, 16).replace("T", " ") : iso.slice(11, 16);
    }
    const opts = { hour: "2-digit", minute: "2-digit" };
    return withDate ? d.toLocaleString([], { ...opts, year: "numeric", month: "2-digit", day: "2-digit" }) : d.toLocaleTimeString([], opts);
  }

  function toInput(ms) {
    const d = new Date(state.tz === "utc" ? ms : ms - new Date(ms).getTimezoneOffset() * 60e3);
    return d.toISOString().slice(0, 16);
  }

  function fromInput(v) {
    if (!v) return null;
    const t = state.tz === "utc" ? Date.parse(v + ":00Z") : new Date(v).getTime();
    return Number.isFinite(t) ? t : null;
  }

  function safeHref(url) {
    try {
      const u = new URL(url);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  function known(topic) {
    return overview.some((r) => r.topic === topic);
  }

  // ---- tiles and the comparison table -------------------------------------------------------
  function renderTiles() {
    const box = $("tiles");
    box.replaceChildren();
    for (const row of overview) {
      const c = row.current;
      const tile = testid(el("div", "tile" + (row.topic === state.topic ? " selected" : "")), "tile", undefined, row.topic);
      tile.addEventListener("click", () => selectTopic(row.topic));
      tile.append(el("div", "name", row.topic));
      const big = testid(el("div", "big", c.posts), "tile-posts", c.posts, row.topic);
      tile.append(big);
      const change = row.posts_change;
      const ch = testid(el("div", change > 0 ? "up" : change < 0 ? "down" : "muted"), "tile-change", change, row.topic);
      ch.textContent = signed(change, 0) + " vs previous 5 min" + (row.posts_change_ratio !== null ? " (" + signed(row.posts_change_ratio * 100, 0) + "%)" : "");
      tile.append(ch);
      const dl = el("dl");
      const add = (label, text, id, value) => {
        dl.append(el("dt", null, label));
        dl.append(testid(el("dd", null, text), id, value, row.topic));
      };
      add("net sentiment", signed(c.net_sentiment, 2), "tile-net", c.net_sentiment);
      add("negative", pct(c.negative), "tile-negative", c.negative);
      add("top emotion", c.top_emotion, "tile-emotion", c.top_emotion);
      tile.append(dl);
      box.append(tile);
    }
    if (!overview.length) box.append(el("p", "muted", "No topic has posts yet."));
  }

  function sortValue(row) {
    const c = row.current;
    return { topic: row.topic, posts: c.posts, change: row.posts_change, net: c.net_sentiment, negative: c.negative }[sortKey];
  }

  function drawSpark(canvas, values) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width;
    const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    if (!values || values.length < 2) return;
    const max = Math.max(1, ...values);
    ctx.strokeStyle = COLORS.volume;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    values.forEach((v, i) => {
      const x = (i / (values.length - 1)) * (w - 2) + 1;
      const y = h - 1 - (v / max) * (h - 2);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }

  function renderCompare() {
    const body = $("compare").querySelector("tbody");
    body.replaceChildren();
    const rows = overview.slice().sort((a, b) => {
      const x = sortValue(a);
      const y = sortValue(b);
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
    });
    for (const row of rows) {
      const c = row.current;
      const tr = testid(el("tr", row.topic === state.topic ? "selected" : ""), "compare-row", undefined, row.topic);
      tr.addEventListener("click", () => selectTopic(row.topic));
      tr.append(el("td", null, row.topic));
      const td = el("td");
      const canvas = el("canvas");
      canvas.width = 100;
      canvas.height = 24;
      td.append(canvas);
      tr.append(td);
      tr.append(el("td", null, c.posts));
      tr.append(el("td", null, signed(row.posts_change, 0)));
      tr.append(el("td", null, signed(c.net_sentiment, 2)));
      tr.append(el("td", null, pct(c.negative)));
      tr.append(el("td", null, c.top_emotion));
      body.append(tr);
      drawSpark(canvas, row.spark);
    }
  }

  function renderTopicSelect() {
    const sel = $("topic");
    const names = overview.map((r) => r.topic);
    if (state.topic && !names.includes(state.topic)) names.unshift(state.topic);
    const current = Array.from(sel.options).map((o) => o.value);
    if (current.join("\n") !== names.join("\n")) {
      sel.replaceChildren(...names.map((n) => {
        const o = el("option", null, n);
        o.value = n;
        return o;
      }));
    }
    sel.value = state.topic;
    $("topic-label").textContent = state.topic ? "· " + state.topic : "";
  }

  // ---- charts (uPlot) -------------------------------------------------------------------------
  function tzDate(ts) {
    return state.tz === "utc" ? uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC") : new Date(ts * 1e3);
  }

  function chartWidth(box) {
    return Math.max(300, box.clientWidth - 4);
  }

  function episodesOf(topic) {
    // [start, end] of every episode of the topic: the alert log's open..resolve pairs, the
    // open episodes (until now) and the last resolved one of each rule; an episode starts with
    // its first breaching window (started_ms is that window's end)
    const now = Date.now();
    const begin = (e) => e.started_ms - (e.window_min || 0) * 60e3;
    const spans = new Map();
    for (const e of (alertsData.log || []).slice().reverse()) {
      if (e.topic !== topic) continue;
      const span = spans.get(e.episode) || [e.episode_started_ms - (e.window_min || 0) * 60e3, now];
      if (e.kind === "resolve") span[1] = e.ts_ms;
      spans.set(e.episode, span);
    }
    const byStart = new Map(Array.from(spans.values()).map((sp) => [sp[0], sp]));
    for (const e of alertsData.open) if (e.topic === topic && !byStart.has(begin(e))) byStart.set(begin(e), [begin(e), now]);
    for (const e of alertsData.past) if (e.topic === topic && !byStart.has(begin(e))) byStart.set(begin(e), [begin(e), e.ended_ms]);
    return Array.from(byStart.values());
  }

  function drawEpisodes(u) {
    // a point is its bucket's start: an episode covers the buckets from the one it began in to
    // the one it ended in (the current one while open), at least a few pixels wide
    if (!series) return;
    const step = stepMs(series.step);
    const ctx = u.ctx;
    const left = u.bbox.left;
    const right = u.bbox.left + u.bbox.width;
    let drawn = 0;
    ctx.save();
    ctx.fillStyle = "rgba(214, 69, 69, 0.13)";
    for (const [start, end] of episodesOf(state.topic)) {
      let x0 = u.valToPos(Math.floor(start / step) * step / 1000, "x", true);
      let x1 = u.valToPos(Math.floor(end / step) * step / 1000, "x", true);
      if (x1 < left || x0 > right) continue;
      const pad = Math.max(0, 8 - (x1 - x0)) / 2;
      x0 = Math.max(left, x0 - pad);
      x1 = Math.min(right, x1 + pad);
      ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
      drawn++;
    }
    ctx.restore();
    u.root.parentElement.setAttribute("data-episodes", String(drawn));
  }

  function makeCharts() {
    for (const k of Object.keys(charts)) {
      charts[k].destroy();
      delete charts[k];
    }
    const sBox = $("chart-sentiment");
    const vBox = $("chart-volume");
    const axes = [{}, { label: "posts" }];
    charts.sentiment = new uPlot(
      {
        width: chartWidth(sBox),
        height: 220,
        tzDate: tzDate,
        scales: { net: { range: [-1, 1] } },
        series: [
          {},
          { label: "negative", stroke: COLORS.negative, fill: "rgba(214,69,69,0.08)" },
          { label: "neutral", stroke: COLORS.neutral },
          { label: "positive", stroke: COLORS.positive, fill: "rgba(47,158,98,0.08)" },
          { label: "net sentiment", stroke: COLORS.net, dash: [4, 3], scale: "net" },
        ],
        axes: axes.concat([{ scale: "net", side: 1, grid: { show: false }, label: "net" }]),
      },
      [[], [], [], [], []],
      sBox
    );
    charts.volume = new uPlot(
      {
        width: chartWidth(vBox),
        height: 200,
        tzDate: tzDate,
        series: [{}, { label: "posts", stroke: COLORS.volume, fill: "rgba(63,111,216,0.15)" }],
        axes: axes,
        hooks: { drawClear: [drawEpisodes] },
      },
      [[], []],
      vBox
    );
    for (const u of Object.values(charts)) {
      u.over.addEventListener("click", () => {
        const i = u.cursor.idx;
        if (i === null || i === undefined || !series) return;
        const t = u.data[0][i] * 1000;
        bucket = { from: t, to: t + stepMs(series.step) - 1 };
        loadPosts();
      });
    }
  }

  function renderCharts() {
    if (!series || !charts.sentiment) return;
    const pts = series.points;
    const xs = pts.map((p) => p.t / 1000);
    const col = (f) => pts.map(f);
    charts.sentiment.setData([xs, col((p) => p.s.negative), col((p) => p.s.neutral), col((p) => p.s.positive), col((p) => (p.s.negative + p.s.positive ? p.net : null))]);
    charts.volume.setData([xs, col((p) => p.n)]);
    const total = pts.reduce((a, p) => a + p.n, 0);
    for (const id of ["chart-sentiment", "chart-volume"]) {
      const box = $(id);
      box.setAttribute("data-points", String(pts.length));
      box.setAttribute("data-total", String(total));
      box.setAttribute("data-last", String(pts.length ? pts[pts.length - 1].n : 0));
    }
    renderEmotions();
  }

  function renderEmotions() {
    const box = $("emotions");
    box.replaceChildren();
    const sums = Object.fromEntries(EMOTIONS.map((e) => [e, 0]));
    for (const p of series ? series.points : []) for (const e of EMOTIONS) sums[e] += p.e[e] || 0;
    const total = EMOTIONS.reduce((a, e) => a + sums[e], 0);
    for (const e of EMOTIONS) {
      const share = total ? sums[e] / total : 0;
      const row = testid(el("div", "bar"), "emotion-" + e, share.toFixed(3));
      const track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = (share * 100).toFixed(1) + "%";
      track.append(fill);
      row.append(el("span", null, e), track, el("span", null, pct(share)));
      box.append(row);
    }
  }

  // ---- posts, alerts, health --------------------------------------------------------------------
  function renderPosts(body) {
    const list = $("posts");
    list.replaceChildren();
    if (body.texts_hidden) {
      list.append(el("li", "muted", "Post texts are hidden on this server (dashboard.show_texts)."));
      return;
    }
    for (const p of body.posts) {
      const li = testid(el("li"), "post");
      const meta = el("div", "meta");
      meta.append(el("span", "sent " + p.sentiment, p.sentiment || "?"), el("span", null, fmtTime(p.ts_ms, true)));
      const href = safeHref(p.url);
      if (href) {
        const a = el("a", null, "source");
        a.href = href;
        a.rel = "noopener noreferrer nofollow";
        a.target = "_blank";
        meta.append(a);
      }
      li.append(meta, el("div", "text", p.text));
      list.append(li);
    }
    if (!body.posts.length) list.append(el("li", "muted", "No sampled posts in this range."));
  }

  function renderAlerts() {
    // open episodes first, then the alert log (newest first), else the last resolved episodes
    const list = $("alerts");
    list.replaceChildren();
    for (const e of alertsData.open) {
      const li = testid(el("li", "open"), "alert-item", e.status, e.topic);
      li.textContent = e.topic + " · " + e.rule + " · " + e.status + " · " + e.severity + " · since " + fmtTime(e.started_ms, true);
      list.append(li);
    }
    const log = alertsData.log || [];
    for (const e of log.slice(0, 50)) {
      const li = testid(el("li", e.kind === "resolve" ? "" : "open"), "alert-log", e.kind, e.topic);
      li.textContent = fmtTime(e.ts_ms, true) + " · " + e.kind + " · " + e.topic + " · " + e.rule + " · " + e.severity + (e.text ? " · " + e.text : "");
      list.append(li);
    }
    if (!log.length) {
      for (const e of alertsData.past.slice(0, 20)) {
        const li = testid(el("li"), "alert-item", e.status, e.topic);
        li.textContent = e.topic + " · " + e.rule + " · resolved · " + e.severity + " · " + fmtTime(e.started_ms, true) + " until " + fmtTime(e.ended_ms, true);
        list.append(li);
      }
    }
    if (!list.children.length) list.append(el("li", "muted", "No alert episodes."));
  }

  function chip(text, ok, id, value) {
    return testid(el("span", "chip " + (ok ? "ok" : "bad"), text), id, value);
  }

  function renderHealth(st) {
    const box = $("health");
    box.replaceChildren();
    box.append(chip("redis " + (st.redis || "up"), st.redis !== "down", "health-redis", st.redis || "up"));
    if (st.redis === "down") return;
    const now = st.now_ms;
    for (const p of st.processes || []) {
      const age = (now - p.ts_ms) / 1000;
      box.append(chip(p.role + " " + age.toFixed(0) + "s", age < STALE_S, "health-process", p.role));
    }
    for (const c of st.connectors || []) {
      const lag = c.lag_s !== undefined ? " lag " + c.lag_s + "s" : "";
      box.append(chip(c.name + " " + c.state + lag, c.state === "connected", "health-connector", c.state));
    }
    const dlq = st.dlq ? st.dlq.total : 0;
    box.append(chip("DLQ " + dlq, dlq === 0, "health-dlq", dlq));
    const lag = st.sealed_lag_s;
    box.append(chip(lag === null || lag === undefined ? "not sealed yet" : "sealed " + lag.toFixed(0) + "s behind", lag !== null && lag < 600, "health-sealed", lag));
    if (st.alerts) box.append(chip("alert outbox " + st.alerts.outbox, st.alerts.outbox === 0, "health-outbox", st.alerts.outbox));
  }

  function setLive(s) {
    const e = $("live");
    e.setAttribute("data-state", s);
    e.textContent = s;
  }

  // ---- loading ----------------------------------------------------------------------------------
  async function loadOverview() {
    const body = await api("api/v1/topics?spark=30");
    overview = body.topics;
    if (!state.topic && overview.length) {
      state.topic = overview[0].topic;
      writeUrl();
    }
    renderTopicSelect();
    renderTiles();
    renderCompare();
  }

  async function loadSeries() {
    if (!known(state.topic)) {
      series = null;
      return;
    }
    const s = span();
    const step = stepFor(s.to - s.from);
    const q = "from=" + Math.floor(s.from) + "&to=" + Math.floor(s.to) + "&step=" + step;
    series = await api("api/v1/topics/" + encodeURIComponent(state.topic) + "/series?" + q);
    lastSeriesFetch = Date.now();
    renderCharts();
  }

  async function loadPosts() {
    if (!known(state.topic)) return;
    const s = span();
    const from = bucket ? bucket.from : s.from;
    const to = bucket ? bucket.to : s.to + (s.live ? 60e3 : 0);
    $("posts-filter").textContent = bucket ? "bucket of " + fmtTime(bucket.from, true) + " (click the chart elsewhere to change)" : "";
    lastPostsFetch = Date.now();
    const body = await api("api/v1/topics/" + encodeURIComponent(state.topic) + "/posts?limit=30&from=" + Math.floor(from) + "&to=" + Math.floor(to));
    if (!paused) renderPosts(body);
  }

  async function loadAlerts() {
    alertsData = await api("api/v1/alerts");
    renderAlerts();
    if (charts.volume) charts.volume.redraw(false);
  }

  async function loadStatus() {
    renderHealth(await api("api/v1/status"));
  }

  function guarded(p) {
    return p.catch((err) => console.warn("mood-monitor:", err.message));
  }

  async function refresh() {
    await guarded(loadOverview());
    await Promise.all([guarded(loadSeries()), guarded(loadPosts()), guarded(loadAlerts()), guarded(loadStatus())]);
  }

  // ---- live updates -------------------------------------------------------------------------------
  function mergeMinutes(row) {
    if (!series || series.step !== "1m") return;
    const s = span();
    const byT = new Map(series.points.map((p) => [p.t, p]));
    for (const m of row.minutes || []) byT.set(m.t, m);
    series.points = Array.from(byT.values())
      .filter((p) => p.t >= s.from - 60e3)
      .sort((a, b) => a.t - b.t);
    renderCharts();
  }

  function onTopics(body) {
    const old = new Map(overview.map((r) => [r.topic, r]));
    const added = body.topics.some((r) => !old.has(r.topic));
    overview = body.topics.map((r) => {
      const prev = old.get(r.topic);
      const spark = prev && prev.spark ? prev.spark.slice() : [];
      if (spark.length && r.minutes && r.minutes.length) spark[spark.length - 1] = r.minutes[r.minutes.length - 1].n;
      return { ...r, spark: spark };
    });
    if (!state.topic && overview.length) {
      state.topic = overview[0].topic;
      writeUrl();
    }
    renderTopicSelect();
    renderTiles();
    renderCompare();
    $("updated").textContent = "updated " + fmtTime(body.now_ms);
    const row = overview.find((r) => r.topic === state.topic);
    if (!row) return;
    if (!series || added) guarded(loadSeries());
    else if (span().live && series.step === "1m") mergeMinutes(row);
    else if (span().live && Date.now() - lastSeriesFetch > 60e3) guarded(loadSeries());
    if (row.current.posts !== lastPostsCount) {
      lastPostsCount = row.current.posts;
      wantPosts();
    }
  }

  let postsTimer = 0;
  function wantPosts() {
    // new posts counted: refetch the examples, at most every 3 s (later rather than never)
    if (paused || bucket) return;
    clearTimeout(postsTimer);
    const wait = 3000 - (Date.now() - lastPostsFetch);
    if (wait <= 0) guarded(loadPosts());
    else postsTimer = setTimeout(() => guarded(loadPosts()), wait);
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("api/v1/stream");
    source.addEventListener("open", () => {
      setLive("live");
      if (lost) {
        lost = false;
        refresh(); // fill what the gap missed
      }
    });
    source.addEventListener("error", () => {
      lost = true;
      setLive("reconnecting");
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
    source.addEventListener("topics", (ev) => onTopics(JSON.parse(ev.data)));
    source.addEventListener("status", (ev) => renderHealth(JSON.parse(ev.data)));
    source.addEventListener("alerts", (ev) => {
      alertsData = JSON.parse(ev.data);
      renderAlerts();
      if (charts.volume) charts.volume.redraw(false);
    });
  }

  // ---- controls -----------------------------------------------------------------------------------
  function selectTopic(topic) {
    if (topic === state.topic) return;
    state.topic = topic;
    bucket = null;
    lastPostsCount = -1;
    writeUrl();
    renderTopicSelect();
    renderTiles();
    renderCompare();
    guarded(loadSeries());
    guarded(loadPosts());
    if (charts.volume) charts.volume.redraw(false);
  }

  function markRange() {
    for (const b of $("ranges").querySelectorAll("button")) b.classList.toggle("on", b.dataset.range === state.range);
    const s = span();
    $("from").value = toInput(s.from);
    $("to").value = toInput(s.to);
  }

  function setRange(range, from, to) {
    state.range = range;
    state.from = from;
    state.to = to;
    bucket = null;
    writeUrl();
    markRange();
    guarded(loadSeries());
    guarded(loadPosts());
  }

  function wire() {
    $("topic").addEventListener("change", (ev) => selectTopic(ev.target.value));
    for (const b of $("ranges").querySelectorAll("button")) b.addEventListener("click", () => setRange(b.dataset.range, null, null));
    $("apply-range").addEventListener("click", () => {
      const from = fromInput($("from").value);
      const to = fromInput($("to").value);
      if (from && to && from < to) setRange("", from, to);
    });
    $("tz").addEventListener("click", () => {
      state.tz = state.tz === "utc" ? "local" : "utc";
      $("tz").textContent = state.tz === "utc" ? "UTC" : "local";
      $("tz").setAttribute("data-tz", state.tz);
      $("tz-label").textContent = state.tz === "utc" ? "UTC" : "local time";
      writeUrl();
      markRange();
      makeCharts();
      renderCharts();
      renderAlerts();
      guarded(loadPosts());
    });
    $("pause").addEventListener("click", () => {
      paused = !paused;
      $("pause").setAttribute("aria-pressed", String(paused));
      $("pause").textContent = paused ? "resume" : "pause";
      if (!paused) guarded(loadPosts());
    });
    for (const th of $("compare").querySelectorAll("th button")) {
      th.addEventListener("click", () => {
        if (sortKey === th.dataset.sort) sortDir = -sortDir;
        else {
          sortKey = th.dataset.sort;
          sortDir = sortKey === "topic" ? 1 : -1;
        }
        renderCompare();
      });
    }
    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        for (const [k, u] of Object.entries(charts)) u.setSize({ width: chartWidth($("chart-" + k)), height: u.height });
      }, 150);
    });
  }

  function start() {
    $("tz").textContent = state.tz === "utc" ? "UTC" : "local";
    $("tz").setAttribute("data-tz", state.tz);
    $("tz-label").textContent = state.tz === "utc" ? "UTC" : "local time";
    wire();
    markRange();
    makeCharts();
    refresh().then(connect);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
