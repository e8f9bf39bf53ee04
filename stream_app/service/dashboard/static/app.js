/* finpulse desk: the live dashboard page. Plain JS, no build step, no network but this origin.
 *
 * Data: GET /api/overview once, then GET /api/stream (server-sent-event framing read with
 * fetch, because EventSource cannot send the Authorization header and the token must never
 * go in a URL). If the stream cannot be held, the page polls /api/overview every 5 s and
 * keeps trying the stream. Sparklines and the detail view fetch /api/entities/{e}/series
 * and /headlines when an entity's clock moved. Every string from the server is inserted
 * with textContent, never as HTML.
 */
(function () {
  "use strict";

  const TOKEN_KEY = "finpulse.token";
  const POLL_MS = 5000;
  const STALL_MS = 40000; // the server sends a heartbeat every 15 s
  const HISTORY_SECONDS = 3 * 3600; // sparklines and the detail chart: the last 3 hours
  const SPARK_BINS = 36; // 5-minute bins
  const SPARK_REFRESH_MS = 10000;
  const CHART_HEIGHT = 150;

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    needsToken: false,
    overview: null,
    overviewText: null,
    selected: null,
    seenAlerts: null, // alert ids already shown (null until the first overview)
    spark: new Map(), // entity -> {clock, at, series}
    sparkQueue: new Set(),
    sparkBusy: 0,
    sparkWatch: null, // IntersectionObserver of the table's rows
    detailClock: null,
    linkedAlert: null, // ?alert_id= of a forwarded alert link
    chart: null,
    stream: null, // AbortController of the open stream
    pollTimer: null,
    generation: 0, // bumps on sign-out: late replies of an old session are dropped
  };

  class AuthError extends Error {}
  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // --- small helpers --------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const pad = (n) => String(n).padStart(2, "0");
  function hhmm(ms, seconds) {
    const d = new Date(ms);
    const t = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    return seconds ? t + ":" + pad(d.getUTCSeconds()) : t;
  }
  function dayTime(ms) {
    const d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + hhmm(ms, true);
  }
  const pct = (x) => (x === null || x === undefined ? "–" : Math.round(x * 100) + "%");
  const fixed = (x, n) => (x === null || x === undefined ? "–" : x.toFixed(n));
  const entityLabel = (e) => (e.includes(":") ? e.split(":")[1] : e);
  const entityKind = (e) => (e.includes(":") ? e.split(":")[0] : "market");
  function announce(text) { $("announce").textContent = text; }

  // --- HTTP -------------------------------------------------------------------------------
  function headers() {
    return state.token ? { Authorization: "Bearer " + state.token } : {};
  }
  async function api(path) {
    const gen = state.generation;
    const resp = await fetch(path, { headers: headers(), cache: "no-store" });
    if (gen !== state.generation) throw new Error("stale");
    if (resp.status === 401) throw new AuthError("token refused");
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) throw new HttpError(resp.status, (body && body.error) || resp.statusText);
    return body;
  }

  function setConn(kind, text) {
    const c = $("conn");
    c.dataset.state = kind;
    c.textContent = text;
  }

  // --- sign in ----------------------------------------------------------------------------
  function showLogin(message) {
    stopLive();
    $("app").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setConn("offline", "signed out");
    $("token").value = "";
    $("token").focus();
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    state.generation++;
    state.overview = null;
    state.overviewText = null;
    state.seenAlerts = null;
    state.selected = null;
    state.spark.clear();
    showLogin("");
  }

  async function start() {
    state.generation++;
    setConn("connecting", "connecting…");
    try {
      const ov = await api("/api/overview");
      $("login").hidden = true;
      $("app").hidden = false;
      $("signout").hidden = !(state.needsToken || state.token);
      render(ov);
      openStream();
    } catch (err) {
      if (err instanceof AuthError) {
        state.needsToken = true;
        showLogin(state.token ? "That token was refused." : "");
      } else {
        const down = err instanceof HttpError && err.status === 503;
        setConn(down ? "unavailable" : "offline", down ? "store unavailable; retrying" : "cannot reach the worker; retrying");
        setTimeout(start, POLL_MS);
      }
    }
  }

  // --- live feed ----------------------------------------------------------------------------
  function stopLive() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  function startPolling() {
    if (state.pollTimer) return;
    const gen = state.generation;
    const tick = async () => {
      if (gen !== state.generation) return;
      try {
        render(await api("/api/overview"));
        if (!state.stream) setConn("polling", "polling every 5 s");
      } catch (err) {
        if (err instanceof AuthError) return showLogin("The token was refused.");
        setConn(err instanceof HttpError && err.status === 503 ? "unavailable" : "offline",
          err instanceof HttpError && err.status === 503 ? "store unavailable" : "cannot reach the worker");
      }
      state.pollTimer = setTimeout(tick, POLL_MS);
    };
    state.pollTimer = setTimeout(tick, POLL_MS);
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  async function openStream() {
    const gen = state.generation;
    let failures = 0;
    while (gen === state.generation) {
      const ctrl = new AbortController();
      state.stream = ctrl;
      let stall = null;
      const arm = () => { clearTimeout(stall); stall = setTimeout(() => ctrl.abort(), STALL_MS); };
      try {
        arm();
        const resp = await fetch("/api/stream", { headers: headers(), cache: "no-store", signal: ctrl.signal });
        if (resp.status === 401) { clearTimeout(stall); state.stream = null; return showLogin("The token was refused."); }
        if (!resp.ok || !resp.body) throw new HttpError(resp.status, "stream refused");
        stopPolling();
        setConn("live", "live");
        failures = 0;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            handleFrame(frame);
          }
        }
      } catch (err) {
        if (gen !== state.generation) return;
        failures++;
      } finally {
        clearTimeout(stall);
      }
      if (gen !== state.generation) return;
      state.stream = null;
      if (failures > 0) {
        setConn("polling", "reconnecting; polling meanwhile");
        startPolling();
        await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** Math.min(failures, 5))));
      }
    }
  }

  function handleFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue;
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    if (event === "overview") {
      render(JSON.parse(data.join("\n")));
      setConn("live", "live");
    } else if (event === "unavailable") {
      setConn("unavailable", "store unavailable; waiting");
    }
  }

  // --- rendering: overview ---------------------------------------------------------------------
  function render(ov) {
    // The stream's first event usually repeats the overview just fetched: an unchanged
    // overview is not redrawn (no flicker, focus and hover stay where they are).
    const text = JSON.stringify(ov);
    if (text === state.overviewText) return;
    state.overviewText = text;
    const first = state.seenAlerts === null;
    state.overview = ov;
    $("clock").textContent = ov.clock_ms ? dayTime(ov.clock_ms) : "—";
    if (ov.clock_ms) $("clock").setAttribute("datetime", new Date(ov.clock_ms).toISOString());
    renderTable();
    renderAlerts(first);
    if (first) openDeepLink();
    if (state.selected) {
      const row = ov.entities.find((r) => r.entity === state.selected);
      if (row && row.clock_ms !== state.detailClock) loadDetail(state.selected, row);
      else if (row) renderDetailStats(row);
    }
  }

  function visibleRows() {
    const ov = state.overview;
    if (!ov) return [];
    const q = $("filter").value.trim().toLowerCase();
    const kind = $("kind").value;
    const firingOnly = $("firing-only").checked;
    return ov.entities.filter((r) =>
      (!kind || r.kind === kind) &&
      (!firingOnly || r.status === "firing") &&
      (!q || r.entity.toLowerCase().includes(q) || (r.alert_kind || "").includes(q)));
  }

  function renderTable() {
    const ov = state.overview;
    const rows = visibleRows();
    const body = $("entity-rows");
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.entity : null;
    const frag = document.createDocumentFragment();
    // sparklines are drawn (and fetched) for the rows scrolled into view only
    if (state.sparkWatch) state.sparkWatch.disconnect();
    const byEntity = new Map(rows.map((r) => [r.entity, r]));
    state.sparkWatch = new IntersectionObserver((entries, watch) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        watch.unobserve(entry.target);
        const row = byEntity.get(entry.target.dataset.entity);
        if (row) fillSparks(row);
      }
    }, { root: body.closest(".scroll"), rootMargin: "200px 0px" });
    rows.forEach((r) => {
      const tr = el("tr", {
        tabindex: "0",
        class: r.status === "firing" ? "is-firing" : "",
        "aria-selected": r.entity === state.selected ? "true" : "false",
        dataset: { entity: r.entity },
        onclick: () => select(r.entity),
        onkeydown: (ev) => rowKey(ev, r.entity),
      },
      el("td", { class: "num", text: String(r.rank) }),
      el("td", {}, el("span", { text: r.name }), el("span", { class: "entity-kind", text: r.kind === "market" ? "" : r.kind })),
      el("td", { class: "state state-" + r.status, text: r.status }),
      el("td", {}, r.severity ? el("span", { class: "sev sev-" + r.severity, text: r.severity }) : el("span", { class: "muted", text: "–" })),
      // red only with a few negatives behind it: one negative story is 100%, not news
      el("td", { class: "num" + (r.negative >= 3 && r.negative_share - r.baseline_share >= 0.2 ? " hot" : "") },
        pct(r.total ? r.negative_share : null), el("span", { class: "muted", text: " / " + pct(r.baseline_share) })),
      zCell(r),
      el("td", { class: "num" }, String(r.total),
        el("span", { class: "muted", text: r.volume_ratio === null ? "" : " · " + fixed(r.volume_ratio, 1) + "×" })),
      el("td", { class: "spark-cell", dataset: { spark: "share" } }),
      el("td", { class: "spark-cell", dataset: { spark: "volume" } }));
      const cached = state.spark.get(r.entity);
      if (cached) drawSparks(tr, cached.series, r); // no flicker while the observer wakes
      state.sparkWatch.observe(tr);
      frag.append(tr);
    });
    body.replaceChildren(frag);
    $("no-entities").hidden = rows.length > 0;
    $("entity-count").textContent = "(" + rows.length + (rows.length !== ov.entities.length ? " of " + ov.entities.length : "") + (ov.truncated ? "+" : "") + ")";
    if (focused) {
      const again = body.querySelector('tr[data-entity="' + CSS.escape(focused) + '"]');
      if (again) again.focus({ preventScroll: true });
    }
  }

  function zCell(r) {
    // the negative detector's z; a row firing on another kind shows that alert's z too
    const other = r.status === "firing" && r.alert_kind && r.alert_kind !== "negative";
    return el("td", { class: "num" + (r.z >= 3 && r.negative >= 3 ? " hot" : "") }, fixed(r.z, 1),
      other ? el("span", { class: "kind-z kind-" + r.alert_kind, title: r.alert_kind + " z of the firing alert",
        text: r.alert_kind.slice(0, 3) + " " + fixed(r.alert_score, 1) }) : null);
  }

  function rowKey(ev, entity) {
    const tr = ev.currentTarget;
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      select(entity);
    } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const next = ev.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
      if (next) next.focus();
    } else if (ev.key === "Home" || ev.key === "End") {
      ev.preventDefault();
      const rows = tr.parentElement.children;
      const target = ev.key === "Home" ? rows[0] : rows[rows.length - 1];
      if (target) target.focus();
    }
  }

  // --- sparklines ---------------------------------------------------------------------------------
  function fillSparks(row) {
    // a row scrolled into view (its cached sparklines are drawn already): fetch what is stale;
    // refetch when the entity moved: at once if its state changed, else at most every 10 s
    const cached = state.spark.get(row.entity);
    const stale = !cached || cached.status !== row.status ||
      (cached.clock !== row.clock_ms && Date.now() - cached.at > SPARK_REFRESH_MS);
    if (stale) { state.sparkQueue.add(row.entity); pumpSparks(); }
  }

  function pumpSparks() {
    const gen = state.generation;
    while (state.sparkBusy < 4 && state.sparkQueue.size) {
      const entity = state.sparkQueue.values().next().value;
      state.sparkQueue.delete(entity);
      state.sparkBusy++;
      api("/api/entities/" + encodeURIComponent(entity) + "/series?buckets=" + historyBuckets())
        .then((series) => {
          if (gen !== state.generation) return;
          const row = state.overview && state.overview.entities.find((r) => r.entity === entity);
          state.spark.set(entity, { clock: series.clock_ms, status: row && row.status, at: Date.now(), series });
          const tr = $("entity-rows").querySelector('tr[data-entity="' + CSS.escape(entity) + '"]');
          if (tr && row) drawSparks(tr, series, row);
        })
        .catch(() => {})
        .finally(() => { state.sparkBusy--; pumpSparks(); });
    }
  }

  function historyBuckets() {
    // three hours of buckets, or what the worker keeps (the overview says how many)
    const ov = state.overview;
    return Math.max(1, Math.min(Math.round(HISTORY_SECONDS / ov.bucket_seconds), ov.series_buckets_max));
  }

  function bins(series) {
    // Fixed 5-minute bins on the time axis that ends at the newest overview clock, so rows
    // line up: per bin, the items that arrived in it and the window share at its end.
    const end = (state.overview && state.overview.clock_ms) || series.clock_ms;
    const bucketMs = series.bucket_seconds * 1000;
    const width = HISTORY_SECONDS * 1000 / SPARK_BINS;
    const start = Math.floor(end / bucketMs) * bucketMs + bucketMs - SPARK_BINS * width;
    const out = Array.from({ length: SPARK_BINS }, () => ({ share: null, total: 0 }));
    for (const p of series.points) {
      const i = Math.floor((p.start_ms - start) / width);
      if (i < 0 || i >= SPARK_BINS) continue;
      out[i].total += p.total;
      out[i].share = p.window_share; // points ascend: the last one of the bin wins
    }
    return out;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function drawSparks(tr, series, row) {
    const b = bins(series);
    const W = 84, H = 22;
    const step = W / SPARK_BINS;
    const shareSvg = svg("svg", { width: W, height: H, class: "spark", viewBox: `0 0 ${W} ${H}` });
    const y = (v) => (H - 2 - v * (H - 4)).toFixed(1);
    shareSvg.append(svg("line", { class: "base", x1: 0, x2: W, y1: y(row.baseline_share), y2: y(row.baseline_share) }));
    let d = "";
    let pen = false;
    b.forEach((bin, i) => {
      if (bin.share === null) { pen = false; return; }
      d += (pen ? "L" : "M") + (i * step + step / 2).toFixed(1) + " " + y(bin.share);
      pen = true;
    });
    if (d) shareSvg.append(svg("path", { class: "share", d }));
    const max = Math.max(1, ...b.map((x) => x.total));
    const volSvg = svg("svg", { width: W, height: H, class: "spark", viewBox: `0 0 ${W} ${H}` });
    b.forEach((bin, i) => {
      if (!bin.total) return;
      const h = Math.max(1, (bin.total / max) * (H - 2));
      volSvg.append(svg("rect", { class: "vol", x: (i * step + 0.5).toFixed(1), width: Math.max(1, step - 1).toFixed(1), y: (H - h).toFixed(1), height: h.toFixed(1) }));
    });
    const last = [...b].reverse().find((x) => x.share !== null);
    shareSvg.setAttribute("role", "img");
    shareSvg.setAttribute("aria-label", "window negative share, last 3 hours" + (last ? ", latest " + pct(last.share) : ", no items"));
    volSvg.setAttribute("role", "img");
    volSvg.setAttribute("aria-label", "volume, last 3 hours, busiest 5 minutes " + max + " items");
    tr.querySelector('[data-spark="share"]').replaceChildren(shareSvg);
    tr.querySelector('[data-spark="volume"]').replaceChildren(volSvg);
  }

  // --- headlines with link spans ---------------------------------------------------------------------
  function headlineNode(text, links, entity) {
    // Spans are [start, end) in code points; JS strings index UTF-16 units, so slice code points.
    const cps = Array.from(text);
    const spans = (links || [])
      .filter((l) => Array.isArray(l.span) && l.span[0] >= 0 && l.span[0] < l.span[1] && l.span[1] <= cps.length)
      .sort((a, b) => a.span[0] - b.span[0]);
    const node = el("span", { class: "headline" });
    let at = 0;
    for (const link of spans) {
      const [s, e] = link.span;
      if (s < at) continue; // overlapping: keep the first
      if (s > at) node.append(cps.slice(at, s).join(""));
      node.append(el("mark", {
        class: "link" + (link.entity === entity ? " self" : ""),
        title: link.entity + " (" + link.via + ")",
        text: cps.slice(s, e).join(""),
      }));
      at = e;
    }
    if (at < cps.length) node.append(cps.slice(at).join(""));
    return node;
  }

  // --- alerts ------------------------------------------------------------------------------------------
  function alertReading(a) {
    // what the kind measured: negatives / positives against the baseline share, or the
    // volume of stories against the expected count (schema v2 adds count/share/expected)
    const count = a.count === null || a.count === undefined ? null : a.count;
    if (a.kind === "volume" && a.expected_count !== null && a.expected_count !== undefined) {
      return (count ?? a.total_count) + " stories vs " + fixed(a.expected_count, 1) + " expected";
    }
    if (a.kind === "positive" && count !== null) {
      return count + " of " + a.total_count + " positive (" + pct(a.share) + " vs " + pct(a.baseline_share) + ")";
    }
    return a.negative_count + " of " + a.total_count + " negative (" + pct(a.negative_share) + " vs " + pct(a.baseline_share) + ")";
  }

  function alertCard(a, isNew) {
    const evidence = el("ol", { class: "evidence" });
    const positive = a.kind === "positive";
    for (const ev of a.evidence) {
      // the evidence names the alert's entity at ``span`` (v2), or carries entity ``links``
      const links = (ev.links || []).slice();
      if (ev.span) links.push({ entity: a.entity, via: "name", span: ev.span });
      const prob = positive ? ev.positive_prob : ev.negative_prob;
      evidence.append(el("li", {}, headlineNode(ev.headline, links, a.entity),
        prob === null || prob === undefined ? null
          : el("span", { class: "prob", text: (positive ? "p(pos) " : "p(neg) ") + fixed(prob, 2) })));
    }
    const since = Date.parse(a.episode_start);
    return el("li", {
      class: "alert kind-" + a.kind + (isNew ? " is-new" : "") + (a.alert_id === state.linkedAlert ? " is-linked" : ""),
      dataset: { alertId: a.alert_id, entity: a.entity },
    },
    el("div", { class: "alert-head" },
      // the entity's name is the button that opens its detail
      el("button", { type: "button", class: "alert-entity", onclick: () => select(a.entity, true),
        "aria-label": entityLabel(a.entity) + ": show the detail", text: entityLabel(a.entity) }),
      el("span", { class: "muted", text: entityKind(a.entity) + " · " + a.kind }),
      el("span", { class: "sev sev-" + a.severity, text: a.severity }),
      a.state === "escalated" ? el("span", { class: "state state-firing", text: "escalated" }) : null),
    el("p", { class: "alert-meta", text:
      "since " + hhmm(since) + " UTC · " + alertReading(a) + " · z " + fixed(a.score, 1) +
      (a.repeats ? " · " + a.repeats + (a.repeats === 1 ? " repeat" : " repeats") + " not counted" : "") }),
    evidence);
  }

  function renderAlerts(first) {
    const ov = state.overview;
    const seen = state.seenAlerts || new Set();
    const fresh = [];
    const list = document.createDocumentFragment();
    for (const a of ov.firing) {
      const isNew = !first && !seen.has(a.alert_id);
      if (isNew) fresh.push(a);
      list.append(alertCard(a, isNew));
    }
    // keep the focus on an alert's button when its card is redrawn
    const active = document.activeElement;
    const keep = active && active.closest && active.closest(".alert") ? active.closest(".alert").dataset.alertId : null;
    $("firing").replaceChildren(list);
    if (keep) {
      const again = $("firing").querySelector('[data-alert-id="' + CSS.escape(keep) + '"] button');
      if (again) again.focus({ preventScroll: true });
    }
    $("no-firing").hidden = ov.firing.length > 0;
    $("firing-count").textContent = ov.firing.length ? "(" + ov.firing.length + ")" : "";
    const recent = document.createDocumentFragment();
    for (const a of ov.recent) {
      recent.append(el("li", {},
        el("span", { class: "muted", text: hhmm(Date.parse(a.fired_at)) }),
        el("span", { text: entityLabel(a.entity) + " · " + a.kind + " " + a.state }),
        el("span", { class: "sev sev-" + (a.state === "resolved" ? (a.peak_severity || a.severity) : a.severity),
          text: a.state === "resolved" ? "peak " + (a.peak_severity || a.severity) : a.severity })));
    }
    $("recent").replaceChildren(recent);
    $("no-recent").hidden = ov.recent.length > 0;
    for (const a of ov.firing) seen.add(a.alert_id);
    for (const a of ov.recent) seen.add(a.alert_id);
    state.seenAlerts = seen;
    if (fresh.length) {
      announce(fresh.map((a) => "Alert: " + entityLabel(a.entity) + ", " + a.kind + ", severity " + a.severity).join(". "));
    }
  }

  // --- detail -----------------------------------------------------------------------------------------------
  function openDeepLink() {
    // /?entity=ticker:TSLA&alert_id=... (the links alert forwarding sends): open that
    // entity's detail and bring that alert into view. Only ids and names, never a token.
    const params = new URLSearchParams(location.search);
    const entity = params.get("entity");
    if (entity && /^(market|ticker:[A-Z][A-Z0-9.\-]{0,9}|topic:[a-z0-9]+(-[a-z0-9]+)*)$/.test(entity)) {
      select(entity, false);
    }
    state.linkedAlert = params.get("alert_id");
    const card = state.linkedAlert &&
      $("firing").querySelector('[data-alert-id="' + CSS.escape(state.linkedAlert) + '"]');
    if (card) {
      card.classList.add("is-linked");
      card.scrollIntoView({ block: "nearest" });
    }
  }

  function select(entity, focusTable) {
    state.selected = entity;
    state.detailClock = null;
    // the URL names the open entity, so it can be shared or bookmarked (no token in it)
    history.replaceState(null, "", "?entity=" + encodeURIComponent(entity));
    for (const tr of $("entity-rows").children) tr.setAttribute("aria-selected", tr.dataset.entity === entity ? "true" : "false");
    const row = state.overview && state.overview.entities.find((r) => r.entity === entity);
    loadDetail(entity, row);
    if (focusTable) {
      const tr = $("entity-rows").querySelector('tr[data-entity="' + CSS.escape(entity) + '"]');
      if (tr) tr.focus();
    }
  }

  function renderDetailStats(row) {
    $("detail-stats").textContent = row
      ? row.status + (row.severity ? " (" + row.severity + ")" : "") + " · " + row.negative + " of " + row.total +
        " negative in the window (" + pct(row.total ? row.negative_share : null) + " vs baseline " + pct(row.baseline_share) +
        ") · z " + fixed(row.z, 1) + (row.volume_ratio === null ? "" : " · volume " + fixed(row.volume_ratio, 1) + "× baseline")
      : "";
  }

  async function loadDetail(entity, row) {
    const gen = state.generation;
    state.detailClock = row ? row.clock_ms : null;
    $("detail-h").textContent = entityLabel(entity) + (entityKind(entity) === "market" ? "" : " · " + entityKind(entity));
    renderDetailStats(row);
    $("detail-empty").hidden = true;
    $("detail-body").hidden = false;
    const path = "/api/entities/" + encodeURIComponent(entity);
    try {
      const [series, heads] = await Promise.all([
        api(path + "/series?buckets=" + historyBuckets()),
        api(path + "/headlines?limit=20"),
      ]);
      if (gen !== state.generation || state.selected !== entity) return;
      drawChart(series, row);
      const list = document.createDocumentFragment();
      for (const h of heads.headlines) {
        list.append(el("li", {},
          el("time", { class: "muted", datetime: new Date(h.published_at_ms).toISOString(), text: hhmm(h.published_at_ms, false) }),
          el("span", { class: "sent-" + h.sentiment, text: h.sentiment + " " + fixed(h.negative_prob, 2) }),
          el("span", {}, headlineNode(h.headline, h.links, entity),
            h.novelty === "repeat" ? el("span", { class: "repeat", text: "repeat" }) : null)));
      }
      if (!heads.headlines.length) list.append(el("li", { class: "empty", text: "No headline stored." }));
      $("headlines").replaceChildren(list);
    } catch (err) {
      if (err instanceof AuthError) return showLogin("The token was refused.");
      if (gen !== state.generation) return;
      $("headlines").replaceChildren(el("li", { class: "empty", text: err instanceof HttpError && err.status === 404 ? "No data for this entity yet." : "Could not load the detail; it retries with the next update." }));
      state.detailClock = null;
    }
  }

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function drawChart(series, row) {
    // The detector's view over time: the window's negative share and item count at every
    // minute (the right edge equals the table row), the baseline share dashed.
    const host = $("chart");
    const xs = series.points.map((p) => p.start_ms / 1000);
    const share = series.points.map((p) => p.window_share);
    const base = series.points.map(() => (row ? row.baseline_share : null));
    const vol = series.points.map((p) => p.window_total);
    const lastPoint = series.points[series.points.length - 1];
    const hours = Math.round((series.points.length * series.bucket_seconds) / 3600);
    host.setAttribute("aria-label", "Chart of the last " + hours + " hours: window negative share now " +
      pct(lastPoint ? lastPoint.window_share : null) + ", baseline " + pct(row ? row.baseline_share : null) +
      ", " + (lastPoint ? lastPoint.window_total : 0) + " items in the window.");
    if (typeof uPlot === "undefined") return;
    const width = Math.max(320, host.parentElement.clientWidth - 4);
    const windowStart = series.window_start_ms / 1000;
    if (state.chart) { state.chart.destroy(); state.chart = null; }
    const axis = {
      stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") },
    };
    const winMin = Math.round(series.window_seconds / 60);
    state.chart = new uPlot({
      width, height: CHART_HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      scales: { x: { time: true }, share: { range: [0, 1] }, vol: { range: (u, min, max) => [0, Math.max(4, max * 1.1)] } },
      axes: [
        { ...axis, size: 30, values: (u, ticks) => ticks.map((t) => hhmm(t * 1000)) },
        { ...axis, scale: "share", values: (u, ticks) => ticks.map((v) => Math.round(v * 100) + "%"), size: 48 },
        { ...axis, scale: "vol", side: 1, grid: { show: false }, size: 40 },
      ],
      series: [
        { label: "UTC" },
        { label: "negative share (" + winMin + " min window)", scale: "share", stroke: css("--neg"), width: 2 },
        { label: "baseline share", scale: "share", stroke: css("--muted"), dash: [6, 4], width: 1.5 },
        { label: "items in window", scale: "vol", stroke: css("--accent"), width: 1, fill: "rgba(121,192,255,0.18)" },
      ],
      hooks: {
        drawClear: [(u) => {
          const x0 = u.valToPos(windowStart, "x", true);
          const x1 = u.bbox.left + u.bbox.width;
          u.ctx.save();
          u.ctx.fillStyle = "rgba(255,129,130,0.10)";
          u.ctx.fillRect(x0, u.bbox.top, Math.max(0, x1 - x0), u.bbox.height);
          u.ctx.restore();
        }],
      },
    }, [xs, share, base, vol], host);
  }

  // --- wiring ----------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = $("token").value.trim();
      if (!value) { $("login-error").textContent = "Enter the token."; return; }
      state.token = value;
      sessionStorage.setItem(TOKEN_KEY, value);
      start();
    });
    $("signout").addEventListener("click", signOut);
    for (const id of ["filter", "kind", "firing-only"]) $(id).addEventListener("input", renderTable);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (state.chart) state.chart.setSize({ width: Math.max(320, $("chart").parentElement.clientWidth - 4), height: CHART_HEIGHT });
      }, 150);
    });
    start();
  });
})();
