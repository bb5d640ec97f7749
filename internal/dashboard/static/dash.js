// rbee dashboard: one EventSource on the queen's stream. The snapshot
// builds the page, deltas update it in place, a resync rebuilds it.
// Rendering is batched per animation frame and touches only what changed.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const HISTORY = 300; // sparkline samples per series: 5 minutes at 1 Hz
  const LOG_MAX = 200;
  const TYPES = ["snapshot", "hive_online", "hive_stale", "hive_removed", "hive_telemetry",
    "worker_added", "worker_changed", "worker_removed", "queen"];
  const COLORS = { cpu: "--cpu", mem: "--mem", gpu: "--gpu", vram: "--vram" };

  const st = {
    hives: new Map(),   // id -> {h, card, dirty}
    workers: new Map(), // key(hive, id) -> {rec, hive, row, cells, hist, dirty}
    sort: { key: "id", dir: 1 },
    filter: { model: "", hive: "" },
    token: null,
    es: null,
    retry: 0,
    retryTimer: 0,
    lastEvent: 0,
    conn: "connecting",
    orderDirty: true,
    optionsDirty: true,
    frame: 0,
    lastSort: 0,
    selected: null,   // the key of the worker whose detail is open
    gone: null,       // its worker_removed, once removed
    detailDirty: false,
  };
  // For tests and the curious: how much the page has applied.
  const stats = window.rbeeStats = { events: 0, snapshots: 0, resyncs: 0, applyMs: 0, renderMs: 0, errors: [] };

  // ---------- formatting ----------
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const known = (v) => v !== null && v !== undefined && !Number.isNaN(v);
  function bytes(v) {
    if (!known(v)) return null;
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + " " + u[i];
  }
  // bytesPair writes "used/total unit" in the total's unit: "20.0/140 GiB".
  function bytesPair(used, total) {
    if (!known(used)) return null;
    if (!known(total)) return bytes(used);
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, d = 1;
    while (total / d >= 1024 && i < u.length - 1) { d *= 1024; i++; }
    const f = (v) => (v / d).toFixed(i === 0 || v / d >= 100 ? 0 : 1);
    return f(used) + "/" + f(total) + " " + u[i];
  }
  const pct = (v) => known(v) ? v.toFixed(v >= 100 ? 0 : 1) + "%" : null;
  const rate = (v) => known(v) ? bytes(v) + "/s" : null;
  function dur(s) {
    if (!known(s)) return null;
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m " + String(x).padStart(2, "0") + "s";
    return x + "s";
  }
  const clock = (t) => new Date(t).toLocaleTimeString();
  const plural = (n, noun) => n + " " + noun + (n === 1 ? "" : "s");

  // setCell writes a value, or "—" with the reason on hover; it touches
  // the DOM only when something changed.
  function setCell(el, text, why) {
    const t = text === null ? "—" : text;
    const title = text === null ? (why || "not measured") : "";
    if (el.textContent !== t) el.textContent = t;
    if (el.title !== title) el.title = title;
    const isNull = text === null;
    if (el.classList.contains("null") !== isNull) el.classList.toggle("null", isNull);
  }

  // ---------- model ----------
  // A worker id is unique on its hive only (every host may run llm-9301).
  const key = (hive, id) => hive + "\u0000" + id;
  function hiveGPUError(h) {
    if (!h || !h.h) return "hive unknown";
    if (h.h.gpu_backend === "none" || !h.h.gpu_backend) return "no GPU backend on this hive";
    const e = (h.h.node.errors || []).find((x) => x.startsWith("gpu"));
    return e || null;
  }
  function workerGPU(w) {
    const h = st.hives.get(w.hive);
    const err = w.rec.gpu_error || hiveGPUError(h);
    if (err) return { vram: null, util: null, why: err };
    const gs = w.rec.gpus || [];
    let vram = 0, util = 0, vk = true, uk = gs.length > 0;
    for (const g of gs) {
      if (known(g.vram_bytes)) vram += g.vram_bytes; else vk = false;
      if (known(g.sm_util_pct)) util += g.sm_util_pct; else uk = false;
    }
    return { vram: vk ? vram : null, util: uk ? util : (gs.length ? null : 0), why: vk ? null : "the driver reported no per-process memory" };
  }
  function uptime(w, now) {
    if (w.rec.state === "exited" || !w.rec.started_at) return w.rec.uptime_s;
    return (now - Date.parse(w.rec.started_at)) / 1000;
  }

  function putHive(h) {
    let e = st.hives.get(h.id);
    // Exited workers stay in a hive's list a while, for the queen to learn
    // their exit; the page showed that exit in its log, as worker_removed.
    const workers = (h.workers || []).filter((w) => w.state !== "exited");
    const copy = Object.assign({}, h);
    delete copy.workers;
    if (!e) {
      e = { h: copy, card: null, dirty: true };
      st.hives.set(h.id, e);
      st.optionsDirty = true;
    } else {
      e.h = copy;
      e.dirty = true;
    }
    // The hive's record replaces its workers.
    const keep = new Set(workers.map((x) => x.id));
    for (const [k, w] of st.workers) if (w.hive === h.id && !keep.has(w.rec.id)) dropWorker(k);
    for (const w of workers) putWorker(h.id, w);
  }
  function dropHive(id) {
    const e = st.hives.get(id);
    if (!e) return;
    for (const [k, w] of st.workers) if (w.hive === id) dropWorker(k);
    if (e.card) e.card.remove();
    st.hives.delete(id);
    st.optionsDirty = true;
  }
  function putWorker(hive, rec) {
    const k = key(hive, rec.id);
    let w = st.workers.get(k);
    if (!w) {
      w = { key: k, rec, hive, row: null, cells: null, hist: { cpu: [], mem: [], gpu: [], vram: [] }, dirty: true };
      st.workers.set(k, w);
      st.orderDirty = st.optionsDirty = true;
      record(w, Date.now());
    } else {
      const moved = (w.rec.model || "") !== (rec.model || "");
      w.rec = rec;
      w.dirty = true;
      if (moved) { st.optionsDirty = true; applyFilter(w); }
    }
    const h = st.hives.get(hive);
    if (h) h.dirty = true;
    if (st.selected === k) { st.gone = null; st.detailDirty = true; }
  }
  function dropWorker(k) {
    const w = st.workers.get(k);
    if (!w) return;
    if (w.row) { visible.delete(w); observer.unobserve(w.row); w.row.remove(); }
    st.workers.delete(k);
    const h = st.hives.get(w.hive);
    if (h) h.dirty = true;
    st.optionsDirty = true;
  }
  function record(w, now) {
    const g = workerGPU(w);
    const push = (a, v) => { a.push(known(v) ? v : NaN); if (a.length > HISTORY) a.shift(); };
    push(w.hist.cpu, w.rec.cpu_pct);
    push(w.hist.mem, w.rec.mem_bytes);
    push(w.hist.gpu, g.util);
    push(w.hist.vram, g.vram);
    w.sparkDirty = true;
  }

  function telemetry(d) {
    const h = st.hives.get(d.hive_id);
    if (!h) return;
    const n = h.h.node, dn = d.node;
    n.cpu_pct = dn.cpu_pct;
    n.mem_used_bytes = dn.mem_used_bytes;
    n.errors = dn.errors || [];
    for (const [index, used, util, temp, power] of dn.gpus || []) {
      const g = (n.gpus || []).find((x) => x.index === index);
      if (g) Object.assign(g, { vram_used_bytes: used, util_pct: util, temp_c: temp, power_w: power });
    }
    h.h.last_seen = d.at;
    h.h.state = "online";
    h.dirty = true;
    const at = Date.parse(d.at);
    const fi = d.worker_fields || ["id", "state", "stats", "gpus"];
    const iID = fi.indexOf("id"), iState = fi.indexOf("state"), iStats = fi.indexOf("stats"), iGPUs = fi.indexOf("gpus");
    const sf = d.stat_fields || [];
    for (const row of d.workers || []) {
      const w = st.workers.get(key(d.hive_id, row[iID]));
      if (!w) continue; // its worker_added is on its way
      const r = w.rec, stats = row[iStats] || [];
      if (r.state !== row[iState]) st.orderDirty = true;
      r.state = row[iState];
      for (let i = 0; i < sf.length; i++) r[sf[i]] = i < stats.length ? stats[i] : null;
      r.gpus = (row[iGPUs] || []).map(([index, vram, sm]) => ({ index, vram_bytes: vram, sm_util_pct: sm }));
      r.uptime_s = r.started_at ? (at - Date.parse(r.started_at)) / 1000 : null;
      w.dirty = true;
      record(w, at);
    }
  }

  // ---------- events ----------
  function handle(type, ev) {
    const t0 = performance.now();
    st.lastEvent = Date.now();
    stats.events++;
    let d;
    try { d = JSON.parse(ev.data); } catch (e) { note("bad event " + type + ": " + e.message, "bad"); return; }
    switch (type) {
      case "snapshot":
        stats.snapshots++;
        if (d.resync) { stats.resyncs++; note("resynced: the queen restarted or this page missed more than it keeps; the page was rebuilt", "warn"); }
        for (const id of [...st.hives.keys()]) dropHive(id);
        for (const h of d.hives || []) putHive(h);
        if (!d.resync) note("connected: " + plural((d.hives || []).length, "hive") + ", " + plural((d.hives || []).reduce((n, h) => n + liveCount(h), 0), "worker"), "ok");
        break;
      case "hive_online":
        putHive(d.hive);
        note("hive " + d.hive_id + (d.restarted ? " restarted" : d.returned ? " is back" : " online") + " (" + plural(liveCount(d.hive), "worker") + ")", "ok");
        break;
      case "hive_stale": {
        const h = st.hives.get(d.hive_id);
        if (h) { h.h.state = "stale"; h.dirty = true; }
        for (const w of st.workers.values()) if (w.hive === d.hive_id) w.dirty = true;
        note("hive " + d.hive_id + " stale: no heartbeat since " + clock(Date.parse(d.last_seen)), "warn");
        break;
      }
      case "hive_removed":
        dropHive(d.hive_id);
        note("hive " + d.hive_id + " removed (" + (d.reason || "silent") + ")" + (d.worker_ids && d.worker_ids.length ? " with " + plural(d.worker_ids.length, "worker") : ""), "bad");
        break;
      case "hive_telemetry":
        telemetry(d);
        break;
      case "worker_added":
        putWorker(d.hive_id, d.worker);
        note("worker " + d.worker.id + " added on " + d.hive_id + (d.worker.model ? " (" + d.worker.model + ")" : "") + (d.worker.pid ? ", pid " + d.worker.pid : ""), "ok");
        break;
      case "worker_changed":
        putWorker(d.hive_id, d.worker);
        break;
      case "worker_removed":
        if (st.selected === key(d.hive_id, d.worker_id)) { st.gone = d; st.detailDirty = true; }
        dropWorker(key(d.hive_id, d.worker_id));
        note("worker " + d.worker_id + " on " + d.hive_id + " " + exitText(d), d.reason === "exited" && !cleanExit(d) ? "bad" : "", d.log_tail);
        break;
      case "queen":
        $("summary").textContent = plural(d.hives, "hive") + " (" + d.stale + " stale), " + plural(d.workers, "worker") + " · queen " + d.version + ", up " + dur(d.uptime_s);
        break;
    }
    stats.applyMs += performance.now() - t0;
    schedule();
  }
  const liveCount = (h) => ((h && h.workers) || []).filter((w) => w.state !== "exited").length;
  const cleanExit = (d) => d.exit_code === 0 && !d.signal && !d.oom_killed;
  function exitText(d) {
    if (d.reason === "stopped") return "was stopped" + (d.signal ? " (" + d.signal + ")" : known(d.exit_code) ? " (exit code " + d.exit_code + ")" : "");
    if (d.oom_killed) return "was OOM-killed" + (d.signal ? " (" + d.signal + ")" : "");
    if (d.signal) return "was killed by " + d.signal;
    if (known(d.exit_code)) return "exited with code " + d.exit_code;
    if (d.reason === "exited") return "exited (exit status unknown: the hive adopted it after a restart, so it is not its parent)";
    return { gone: "is gone from its hive's list", hive_restarted: "was not re-adopted after its hive restarted", replaced: "was replaced by a new process" }[d.reason] || "removed (" + d.reason + ")";
  }
  function note(text, cls, output) {
    const li = document.createElement("li");
    li.innerHTML = "<time>" + esc(clock(Date.now())) + "</time>";
    const span = document.createElement("span");
    span.textContent = text;
    if (cls) span.className = cls;
    li.append(span);
    if (output) {
      // The end of an exited worker's output: why it crashed.
      const det = document.createElement("details");
      const sum = document.createElement("summary");
      sum.textContent = "last output";
      const pre = document.createElement("pre");
      pre.textContent = output;
      det.append(sum, pre);
      li.append(det);
    }
    const log = $("log");
    log.prepend(li);
    while (log.childElementCount > LOG_MAX) log.lastElementChild.remove();
  }

  // ---------- connection ----------
  function streamURL() {
    return "v1/heartbeats/stream" + (st.token ? "?access_token=" + encodeURIComponent(st.token) : "");
  }
  function setConn(c, text) {
    st.conn = c;
    $("conn").className = "conn conn-" + c;
    $("conn-text").textContent = text || c;
  }
  function connect() {
    clearTimeout(st.retryTimer);
    if (st.es) st.es.close();
    const es = new EventSource(streamURL());
    st.es = es;
    setConn(st.retry ? "reconnecting" : "connecting");
    es.onopen = () => {
      st.retry = 0;
      setConn("live");
    };
    es.onerror = () => {
      if (st.es !== es) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects on its own, with Last-Event-ID.
        if (st.conn === "live") note("connection to the queen lost; reconnecting", "warn");
        setConn("reconnecting");
        return;
      }
      es.close(); // an HTTP error: the browser gave up; find out why
      diagnose();
    };
    for (const t of TYPES) es.addEventListener(t, (ev) => { if (st.es === es) handle(t, ev); });
  }
  async function diagnose() {
    let status = 0, body = "";
    const ctl = new AbortController();
    try {
      const r = await fetch(streamURL(), { signal: ctl.signal, cache: "no-store" });
      status = r.status;
      if (!r.ok) body = await r.text();
    } catch (e) { /* unreachable */ }
    ctl.abort();
    if (status === 401 || status === 403) {
      let msg = "";
      try { msg = JSON.parse(body).error; } catch (e) { msg = body; }
      setConn("lost", "needs a read-only token");
      const refused = st.token;
      // Forget a refused token, so a reload does not send it again.
      st.token = null;
      try { sessionStorage.removeItem("rbee.token"); } catch (x) { /* private mode */ }
      askToken(refused ? "The queen refused this token: " + msg + ". The dashboard takes the read-only token (the queen's --read-token-file, or read-token in its --state-dir)." : "This queen needs a read-only token to show its fleet.");
      return;
    }
    st.retry++;
    const delay = Math.min(30000, 500 * 2 ** Math.min(st.retry, 6));
    const why = status === 503 ? "the queen has its maximum of stream clients" : status ? "HTTP " + status : "the queen is unreachable";
    if (st.conn === "live") note("connection to the queen lost; reconnecting", "warn");
    setConn(st.retry > 4 ? "lost" : "reconnecting", (st.retry > 4 ? "lost" : "reconnecting") + ": " + why + ", retry in " + Math.round(delay / 1000) + " s");
    st.retryTimer = setTimeout(connect, delay);
  }
  function askToken(why) {
    $("token-why").textContent = why;
    $("token-form").hidden = false;
    $("token-input").focus();
  }
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    st.token = $("token-input").value.trim();
    $("token-input").value = "";
    try { sessionStorage.setItem("rbee.token", st.token); } catch (x) { /* private mode */ }
    $("token-form").hidden = true;
    st.retry = 0;
    connect();
  });

  // ---------- rendering ----------
  function schedule() { if (!st.frame) st.frame = requestAnimationFrame(render); }
  function render() {
    st.frame = 0;
    const t0 = performance.now();
    const now = Date.now();
    if (st.optionsDirty) updateOptions();
    for (const h of st.hives.values()) if (h.dirty) renderHive(h);
    // Rows off screen keep their news until they scroll into view: a
    // thousand rows' worth of text changes a second is what makes frames
    // long, not the JavaScript.
    for (const w of st.workers.values()) {
      if (!w.row) { buildRow(w); renderRow(w, now); applyFilter(w); w.dirty = false; }
      else if (w.dirty && visible.has(w)) { renderRow(w, now); w.dirty = false; }
    }
    for (const w of visible) if (w.sparkDirty) drawSparks(w);
    if (st.detailDirty) renderDetail();
    // Re-sort on a membership change at once, on moving numbers once a second.
    if (st.orderDirty || (now - st.lastSort > 1000 && !["id", "hive", "model"].includes(st.sort.key))) reorder(now);
    stats.renderMs += performance.now() - t0;
  }

  function meter(label, cls, frac, text, why) {
    const f = known(frac) ? Math.max(0, Math.min(1, frac)) : 0;
    return '<div class="meter"><span>' + esc(label) + '</span><span class="bar ' + cls + '"><i style="width:' + (f * 100).toFixed(1) + '%"></i></span>' +
      (text === null ? '<span class="null" title="' + esc(why || "not measured") + '">—</span>' : "<span>" + esc(text) + "</span>") + "</div>";
  }
  function renderHive(e) {
    e.dirty = false;
    const h = e.h, n = h.node || {};
    if (!e.card) {
      e.card = document.createElement("article");
      e.card.className = "card";
      e.card.dataset.hive = h.id;
      const cards = [...$("hives").children];
      const after = cards.find((c) => c.dataset.hive > h.id);
      $("hives").insertBefore(e.card, after || null);
    }
    const nw = [...st.workers.values()].filter((w) => w.hive === h.id).length;
    const stale = h.state === "stale";
    e.card.classList.toggle("stale", stale);
    const errs = (n.errors || []).join("; ");
    let html = "<h3><span>" + esc(h.id) + '</span><span class="badge ' + esc(h.state) + '">' + esc(h.state || "online") + "</span></h3>" +
      '<div class="muted">' + nw + " workers · " + esc(n.cpu_cores || "?") + " cores · " + (h.gpu_backend && h.gpu_backend !== "none" ? esc(h.gpu_backend) : "no GPU backend") +
      (stale ? " · last heartbeat " + esc(clock(Date.parse(h.last_seen))) : "") + "</div>" +
      meter("CPU", "", n.cpu_pct / 100, pct(n.cpu_pct), errs || "not measured yet") +
      meter("Memory", "mem", n.mem_used_bytes / n.mem_total_bytes,
        known(n.mem_used_bytes) ? bytes(n.mem_used_bytes) + " / " + bytes(n.mem_total_bytes) : null, errs);
    const gerr = (n.errors || []).find((x) => x.startsWith("gpu")) || "not reported by the driver";
    const names = [...new Set((n.gpus || []).map((g) => g.name))];
    if (names.length) html += '<div class="muted">' + (n.gpus.length > 1 ? n.gpus.length + "× " : "") + esc(names.join(", ")) + "</div>";
    // One line per GPU: VRAM and utilisation; the rest on hover.
    for (const g of n.gpus || []) {
      const vf = g.vram_used_bytes / g.vram_total_bytes, uf = g.util_pct / 100;
      const title = "GPU " + g.index + " · " + g.name + " · " + g.uuid + (known(g.temp_c) ? " · " + g.temp_c.toFixed(0) + " °C" : "") +
        (known(g.power_w) ? " · " + g.power_w.toFixed(0) + " W" : "") + " · VRAM " + (bytes(g.vram_used_bytes) || "—") + " / " + (bytes(g.vram_total_bytes) || "—");
      html += '<div class="gpu" title="' + esc(title) + '"><span>GPU ' + g.index + "</span>" +
        '<span class="bar vram"><i style="width:' + (known(vf) ? Math.min(1, vf) * 100 : 0).toFixed(1) + '%"></i></span>' +
        (known(g.vram_used_bytes) ? "<span>" + esc(bytesPair(g.vram_used_bytes, g.vram_total_bytes)) + "</span>" : '<span class="null" title="' + esc(gerr) + '">—</span>') +
        '<span class="bar gpu"><i style="width:' + (known(uf) ? Math.min(1, uf) * 100 : 0).toFixed(1) + '%"></i></span>' +
        (known(g.util_pct) ? "<span>" + esc(pct(g.util_pct)) + "</span>" : '<span class="null" title="' + esc(gerr) + '">—</span>') + "</div>";
    }
    if (e.html !== html) { e.card.innerHTML = html; e.html = html; }
  }

  const COLS = ["id", "hive", "model", "state", "pid", "cpu", "mem", "io", "gpu", "vram", "uptime"];
  const SPARKS = { cpu: "cpu", mem: "mem", gpu: "gpu", vram: "vram" };
  function buildRow(w) {
    const tr = document.createElement("tr");
    tr.dataset.worker = w.rec.id;
    tr.dataset.hive = w.hive;
    w.cells = {};
    for (const c of COLS) {
      const td = document.createElement("td");
      if (["pid", "cpu", "mem", "io", "gpu", "vram", "uptime"].includes(c)) td.className = "num";
      if (["pid", "io", "uptime"].includes(c)) td.classList.add("opt");
      const v = document.createElement("span");
      v.className = "v";
      td.append(v);
      if (SPARKS[c]) {
        const cv = document.createElement("canvas");
        cv.width = 48 * (window.devicePixelRatio || 1);
        cv.height = 16 * (window.devicePixelRatio || 1);
        td.append(cv);
        w.cells[c + "Spark"] = cv;
      }
      w.cells[c] = v;
      if (c === "id") {
        // Shown under the id where the hive column does not fit (phones).
        const sub = document.createElement("small");
        sub.className = "sub";
        sub.textContent = w.hive;
        td.append(sub);
      }
      tr.append(td);
    }
    tr.addEventListener("click", () => select(w.key));
    w.row = tr;
    w.dirty = true;
    st.orderDirty = true;
    observer.observe(tr);
  }
  function renderRow(w, now) {
    const r = w.rec, c = w.cells;
    const stale = st.hives.get(w.hive) && st.hives.get(w.hive).h.state === "stale";
    const errs = (r.errors || []).join("; ");
    setCell(c.id, r.id);
    setCell(c.hive, w.hive + (stale ? " (stale)" : ""));
    setCell(c.model, r.model || null, "no --model in its command line");
    if (r.model && c.model.title !== r.model) c.model.title = r.model;
    setCell(c.state, r.state);
    if (c.state.dataset.state !== r.state) { c.state.dataset.state = r.state; c.state.className = "v badge " + r.state; }
    setCell(c.pid, r.pid ? String(r.pid) : null, "no process");
    const lim = r.cpu_limit_pct;
    setCell(c.cpu, known(r.cpu_pct) ? pct(r.cpu_pct) + (known(lim) ? " / " + pct(lim) : "") : null,
      errs || (r.state === "exited" ? "exited" : "first sample: a rate needs two"));
    const ml = r.mem_limit_bytes;
    setCell(c.mem, known(r.mem_bytes) ? bytes(r.mem_bytes) + (known(ml) ? " / " + bytes(ml) : "") : null, errs || "not measured");
    setCell(c.io, known(r.io_read_bps) ? rate(r.io_read_bps) + " / " + rate(r.io_write_bps) : null,
      errs || "first sample: a rate needs two");
    const g = workerGPU(w);
    const perGPU = (r.gpus || []).map((x) => "GPU " + x.index + ": " + (bytes(x.vram_bytes) || "—") + ", SM " + (pct(x.sm_util_pct) || "—")).join("\n");
    setCell(c.gpu, pct(g.util), g.why);
    setCell(c.vram, bytes(g.vram), g.why);
    if (perGPU && !g.why && c.vram.title !== perGPU) { c.vram.title = perGPU; c.gpu.title = perGPU; }
    setCell(c.uptime, dur(uptime(w, now)), "not started");
    w.row.classList.toggle("exited", r.state === "exited");
  }
  // ---------- worker detail ----------
  // A row's click opens the worker's detail: its record, limits, health,
  // restarts, how its last run ended with the end of its output, and the
  // command that follows its log. It follows the worker's events; once the
  // worker is removed it keeps what the removal said.
  function select(k) {
    if (st.selected) { const o = st.workers.get(st.selected); if (o && o.row) o.row.classList.remove("selected"); }
    st.selected = k;
    st.gone = null;
    $("detail").hidden = !k;
    const w = k && st.workers.get(k);
    if (w && w.row) w.row.classList.add("selected");
    renderDetail();
  }
  function exitOf(x) {
    if (!x) return null;
    if (x.stopped) return "stopped" + (x.signal ? " (" + x.signal + ")" : known(x.exit_code) ? " (exit code " + x.exit_code + ")" : "");
    if (x.oom_killed) return "OOM-killed" + (x.signal ? " (" + x.signal + ")" : "");
    if (x.signal) return "killed by " + x.signal;
    if (known(x.exit_code)) return "exit code " + x.exit_code;
    return null;
  }
  function renderDetail() {
    st.detailDirty = false;
    if (!st.selected) return;
    const w = st.workers.get(st.selected);
    const gone = st.gone;
    const r = w ? w.rec : gone ? Object.assign({}, gone.worker, { state: "exited" }) : null;
    if (!r) { select(null); return; }
    const hiveID = w ? w.hive : gone.hive_id;
    const h = st.hives.get(hiveID);
    $("detail-title").textContent = r.id + " on " + hiveID;
    const rows = [];
    const add = (k, v) => { if (known(v) && v !== "") rows.push([k, String(v)]); };
    add("State", r.state + (gone ? " · removed: " + exitText(gone) : ""));
    add("Model", r.model);
    add("Process", r.pid ? "pid " + r.pid + ((r.pids || []).length > 1 ? " (+" + (r.pids.length - 1) + ": " + r.pids.slice(1, 9).join(", ") + (r.pids.length > 9 ? "…" : "") + ")" : "") : null);
    add("Command", [r.binary].concat(r.args || []).filter(known).join(" "));
    add("Started", r.started_at ? new Date(r.started_at).toLocaleString() : null);
    add("Uptime", dur(r.uptime_s));
    add("CPU", known(r.cpu_pct) ? pct(r.cpu_pct) + " of " + (known(r.cpu_limit_pct) ? pct(r.cpu_limit_pct) + " allowed" : "no limit") : null);
    add("Memory", known(r.mem_bytes) ? bytes(r.mem_bytes) + " of " + (known(r.mem_limit_bytes) ? bytes(r.mem_limit_bytes) + " allowed" : "no limit") : null);
    add("Limits", r.limits_enforced === false ? "not enforced: the hive runs without cgroup rights" :
      ["cpu " + (known(r.cpu_limit_pct) ? pct(r.cpu_limit_pct) : "unlimited"), "memory " + (known(r.mem_limit_bytes) ? bytes(r.mem_limit_bytes) : "unlimited"),
        known(r.pids_limit) ? "pids " + r.pids_limit : null].filter(known).join(", "));
    add("Cgroup", r.cgroup);
    const g = w ? workerGPU(w) : { vram: null, util: null };
    add("GPU", (r.gpus || []).length ? (r.gpus || []).map((x) => "GPU " + x.index + ": " + (bytes(x.vram_bytes) || "—") + ", SM " + (pct(x.sm_util_pct) || "—")).join("; ") : known(g.util) ? pct(g.util) : null);
    if (r.health) add("Health", (r.health.target || "") + (r.health.failures ? " · " + plural(r.health.failures, "failure") + " in a row" : " · passing") + (r.health.last_error ? " · " + r.health.last_error : ""));
    add("Restarts", (r.restarts || 0) + (r.restart_error ? " · gave up: " + r.restart_error.replace(/^not restarted: /, "") : ""));
    add("Last run", exitOf(r.last_exit));
    add("Exit", exitOf(gone || r));
    add("Errors", (r.errors || []).join("; "));
    const body = $("detail-body");
    body.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      return [dt, dd];
    }));
    const tail = (gone && gone.log_tail) || r.log_tail || (r.last_exit && r.last_exit.log_tail) || "";
    $("detail-output").hidden = !tail;
    $("detail-tail").textContent = tail;
    $("detail-follow").textContent = "rbee-hive logs -f " + r.id + (h && h.h.url ? " --hive " + h.h.url : "");
  }
  $("detail-close").addEventListener("click", () => select(null));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && st.selected) select(null); });
  function applyFilter(w) {
    const show = (!st.filter.model || w.rec.model === st.filter.model) && (!st.filter.hive || w.hive === st.filter.hive);
    if (w.row && w.row.hidden === show) { w.row.hidden = !show; st.orderDirty = true; }
  }

  function drawSparks(w) {
    w.sparkDirty = false;
    const lim = { cpu: w.rec.cpu_limit_pct || 100, mem: w.rec.mem_limit_bytes || 0, gpu: 100, vram: 0 };
    for (const k of Object.keys(SPARKS)) {
      const cv = w.cells[k + "Spark"];
      const data = w.hist[k];
      const ctx = cv.getContext("2d");
      const W = cv.width, H = cv.height;
      ctx.clearRect(0, 0, W, H);
      let mx = lim[k];
      for (const v of data) if (v > mx) mx = v;
      if (!(mx > 0)) continue;
      ctx.strokeStyle = getComputedStyle(document.documentElement).getPropertyValue(COLORS[k]).trim() || "#888";
      ctx.lineWidth = window.devicePixelRatio || 1;
      ctx.beginPath();
      let pen = false;
      // A minute wide at first, then the whole history squeezed in.
      const step = W / (Math.max(data.length, 60) - 1), x0 = W - (data.length - 1) * step;
      data.forEach((v, i) => {
        if (Number.isNaN(v)) { pen = false; return; }
        const x = x0 + i * step, y = H - 1 - (v / mx) * (H - 2);
        if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        pen = true;
      });
      ctx.stroke();
    }
  }

  function sortValue(w, key, now) {
    const r = w.rec;
    switch (key) {
      case "id": return r.id;
      case "hive": return w.hive + "\u0000" + r.id;
      case "model": return (r.model || "\uffff") + "\u0000" + r.id;
      case "state": return r.state;
      case "pid": return r.pid || null;
      case "cpu": return r.cpu_pct;
      case "mem": return r.mem_bytes;
      case "io": return known(r.io_read_bps) ? r.io_read_bps + r.io_write_bps : null;
      case "gpu": return workerGPU(w).util;
      case "vram": return workerGPU(w).vram;
      case "uptime": return uptime(w, now);
    }
    return null;
  }
  function reorder(now) {
    st.orderDirty = false;
    st.lastSort = now;
    const { key, dir } = st.sort;
    const ws = [...st.workers.values()].filter((w) => w.row);
    const vals = new Map(ws.map((w) => [w, sortValue(w, key, now)]));
    ws.sort((a, b) => {
      const x = vals.get(a), y = vals.get(b);
      if (!known(x) && !known(y)) return a.key < b.key ? -1 : 1;
      if (!known(x)) return 1; // unknowns last, either way
      if (!known(y)) return -1;
      if (x < y) return -dir;
      if (x > y) return dir;
      return a.key < b.key ? -1 : 1;
    });
    const tbody = $("workers").tBodies[0];
    // Move only when the order changed: appending a row moves it.
    const rows = tbody.children;
    let same = rows.length === ws.length;
    for (let i = 0; same && i < ws.length; i++) same = rows[i] === ws[i].row;
    if (!same) {
      const frag = document.createDocumentFragment();
      for (const w of ws) frag.append(w.row);
      tbody.append(frag);
    }
    const shown = ws.filter((w) => !w.row.hidden).length;
    $("worker-count").textContent = shown === ws.length ? "(" + ws.length + ")" : "(" + shown + " of " + ws.length + ")";
    $("no-workers").hidden = ws.length > 0;
  }

  function updateOptions() {
    st.optionsDirty = false;
    const fill = (sel, values, cur) => {
      const want = ["", ...values];
      const have = [...sel.options].map((o) => o.value);
      if (want.join("\u0000") === have.join("\u0000")) return;
      sel.replaceChildren(...want.map((v) => { const o = document.createElement("option"); o.value = v; o.textContent = v || "all"; return o; }));
      sel.value = want.includes(cur) ? cur : "";
    };
    const models = new Set();
    for (const w of st.workers.values()) if (w.rec.model) models.add(w.rec.model);
    fill($("filter-model"), [...models].sort(), st.filter.model);
    fill($("filter-hive"), [...st.hives.keys()].sort(), st.filter.hive);
    // A filter on a model or hive that is gone shows everything again.
    if ($("filter-model").value !== st.filter.model || $("filter-hive").value !== st.filter.hive) refilter();
    st.orderDirty = true;
  }
  function refilter() {
    st.filter.model = $("filter-model").value;
    st.filter.hive = $("filter-hive").value;
    for (const w of st.workers.values()) applyFilter(w);
    st.orderDirty = true;
    schedule();
  }
  $("filter-model").addEventListener("change", refilter);
  $("filter-hive").addEventListener("change", refilter);
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const k = th.dataset.sort;
      st.sort = { key: k, dir: st.sort.key === k ? -st.sort.dir : (["id", "hive", "model", "state"].includes(k) ? 1 : -1) };
      for (const o of document.querySelectorAll("th[data-sort]")) o.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", st.sort.dir > 0 ? "ascending" : "descending");
      st.orderDirty = true;
      schedule();
    });
  }

  // Sparklines are drawn only for rows on screen.
  const visible = new Set();
  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const w = st.workers.get(key(e.target.dataset.hive, e.target.dataset.worker));
      if (!w) continue;
      if (e.isIntersecting) { visible.add(w); w.sparkDirty = w.dirty = true; } else visible.delete(w);
    }
    schedule();
  });

  // The age of the last event, and uptimes, tick without events.
  setInterval(() => {
    if (st.lastEvent) {
      const age = (Date.now() - st.lastEvent) / 1000;
      $("age").textContent = "last event " + (age < 10 ? age.toFixed(1) : age.toFixed(0)) + " s ago";
    }
  }, 250);

  window.addEventListener("error", (e) => stats.errors.push(String(e.message)));

  // ---------- start ----------
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    st.token = decodeURIComponent(m[1]);
    try { sessionStorage.setItem("rbee.token", st.token); } catch (x) { /* private mode */ }
    history.replaceState(null, "", location.pathname + location.search);
  } else {
    try { st.token = sessionStorage.getItem("rbee.token"); } catch (x) { /* private mode */ }
  }
  document.querySelector('th[data-sort="id"]').setAttribute("aria-sort", "ascending");
  connect();
})();
