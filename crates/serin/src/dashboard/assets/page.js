// Serin's dashboard page: the Canary list and one Canary's detail, kept live over the
// server-sent events of api/stream. No framework: DOM nodes and inline SVG, text always set
// through textContent (nothing from the cluster is parsed as HTML).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const rows = new Map(); // key -> <tr>
let selected = decodeURIComponent(location.hash.slice(1)) || null;
let detailBusy = false;
let detailAgain = false;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function phaseBadge(node, phase) {
  node.textContent = phase || "new";
  node.dataset.phase = phase || "";
}

// ---- the list ----------------------------------------------------------------------------

// Adds or updates the row of a Canary; a new row goes to its sorted place unless `inOrder` is
// false (a whole list being loaded, which then places every row once).
function upsertRow(row, inOrder = true) {
  let tr = rows.get(row.key);
  if (!tr) {
    tr = el("tr", { "data-key": row.key });
    const name = el("td");
    name.append(el("span", { class: "name" }, row.name), " ", el("span", { class: "ns" }, row.namespace));
    const phase = el("td");
    phase.append(el("span", { class: "phase" }));
    tr.append(name, phase, el("td", { class: "weight" }));
    tr.addEventListener("click", () => select(row.key));
    rows.set(row.key, tr);
    if (inOrder) {
      const body = $("canaries").tBodies[0];
      const next = [...body.rows].find((r) => r.dataset.key > row.key);
      body.insertBefore(tr, next || null);
    }
  }
  phaseBadge(tr.querySelector(".phase"), row.phase);
  tr.querySelector(".weight").textContent = row.canaryWeight + "%";
  tr.setAttribute("aria-selected", String(row.key === selected));
  applyFilter(tr);
  $("empty").hidden = rows.size > 0;
}

function removeRow(key) {
  const tr = rows.get(key);
  if (tr) tr.remove();
  rows.delete(key);
  $("empty").hidden = rows.size > 0;
  if (key === selected) showDetail(null);
}

function applyFilter(tr) {
  const text = $("filter").value.trim().toLowerCase();
  tr.hidden = text !== "" && !tr.dataset.key.toLowerCase().includes(text);
}

async function loadList() {
  const response = await fetch("api/canaries");
  if (!response.ok) return;
  const list = await response.json();
  const keys = new Set(list.map((r) => r.key));
  for (const key of [...rows.keys()]) if (!keys.has(key)) removeRow(key);
  for (const row of list) upsertRow(row, false);
  // The server sorts the list: appending every row in its order places new and old ones.
  const body = $("canaries").tBodies[0];
  for (const row of list) body.append(rows.get(row.key));
  if (!selected && list.length > 0) select(list[0].key);
  else if (selected) refreshDetail();
}

function select(key) {
  selected = key;
  history.replaceState(null, "", "#" + encodeURIComponent(key));
  for (const [k, tr] of rows) tr.setAttribute("aria-selected", String(k === key));
  refreshDetail();
}

// ---- the detail --------------------------------------------------------------------------

async function refreshDetail() {
  if (!selected) return;
  if (detailBusy) {
    detailAgain = true;
    return;
  }
  detailBusy = true;
  try {
    const [ns, name] = selected.split("/");
    const response = await fetch(`api/canaries/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
    showDetail(response.ok ? await response.json() : null);
  } catch (_) {
    // The stream's reconnection reloads everything.
  } finally {
    detailBusy = false;
    if (detailAgain) {
      detailAgain = false;
      refreshDetail();
    }
  }
}

function showDetail(d) {
  $("detail").hidden = !d;
  if (!d) return;
  $("detail-name").textContent = `${d.namespace}/${d.name}`;
  phaseBadge($("detail-phase"), d.phase);
  const facts = $("detail-facts");
  facts.replaceChildren();
  const fact = (k, v) => facts.append(el("dt", {}, k), el("dd", {}, v));
  fact("target", d.target);
  fact("weight", `${d.canaryWeight}% of ${d.maxWeight}%`);
  fact("failed checks", d.threshold ? `${d.failedChecks} of ${d.threshold}` : String(d.failedChecks));
  fact("iterations", String(d.iterations));
  if (d.lastTransitionTime) fact("last change", clock(d.lastTransitionTime));
  drawWeights(d);
  drawMetrics(d);
  drawEvents(d.events);
  drawDecisions(d.decisions);
}

// ---- plots -------------------------------------------------------------------------------

const W = 640, H = 180, PAD = { left: 44, right: 12, top: 10, bottom: 24 };

// Round steps for an axis over `span`: 1, 2 or 5 times a power of ten, about four of them.
function niceStep(span) {
  const raw = Math.max(span, 1e-9) / 4;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

// A plot frame: x over [t0, t1], y over [y0, y1]; returns the scale functions.
function frame(svg, t0, t1, y0, y1, yLabel) {
  svg.replaceChildren();
  const x = (t) => PAD.left + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - y0) / Math.max(1e-9, y1 - y0)) * (H - PAD.top - PAD.bottom);
  const step = niceStep(y1 - y0);
  for (let v = Math.ceil(y0 / step) * step; v <= y1 + step * 1e-6; v += step) {
    svg.append(el("svg:line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    svg.append(el("svg:text", { x: PAD.left - 4, y: y(v) + 3, "text-anchor": "end" }, yLabel(v)));
  }
  svg.append(el("svg:line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: H - PAD.bottom }));
  svg.append(el("svg:line", { class: "axis", x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }));
  for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
    svg.append(el("svg:text", { x: x(t), y: H - 8, "text-anchor": anchor }, clock(t)));
  }
  return { x, y };
}

function round(v) {
  if (v === 0) return "0";
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2);
}

function drawWeights(d) {
  const svg = $("weight-plot");
  const points = d.weights;
  const now = Date.now();
  const t0 = points.length ? points[0].t : now - 60000;
  const t1 = Math.max(now, points.length ? points[points.length - 1].t : now);
  const top = Math.max(d.maxWeight, ...points.map((p) => p.weight), 10);
  const { x, y } = frame(svg, t0, t1, 0, top, (v) => v.toFixed(0) + "%");
  if (!points.length) return;
  // The weight holds until the next change: a step line, extended to now.
  let path = `M${x(points[0].t)},${y(points[0].weight)}`;
  for (const p of points.slice(1)) path += ` H${x(p.t)} V${y(p.weight)}`;
  path += ` H${x(t1)}`;
  svg.append(el("svg:path", { class: "series", d: path }));
  for (const p of points) {
    const dot = el("svg:circle", { class: "point", cx: x(p.t), cy: y(p.weight), r: 3.5 });
    dot.append(el("svg:title", {}, `${clock(p.t)}: ${p.weight}% (${p.phase || "new"})`));
    svg.append(dot);
  }
}

function drawMetrics(d) {
  const box = $("metric-plots");
  box.replaceChildren();
  $("no-metrics").hidden = d.metrics.length > 0;
  for (const series of d.metrics) {
    const wrap = el("div", { class: "metric", "data-metric": series.name });
    wrap.append(el("div", { class: "name" }, series.name));
    const svg = el("svg:svg", { class: "plot metric-plot", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": `${series.name} against its threshold` });
    wrap.append(svg);
    box.append(wrap);
    const pts = series.points;
    const values = pts.flatMap((p) => [p.value, p.min, p.max]).filter((v) => typeof v === "number");
    let lo = values.length ? Math.min(...values) : 0;
    let hi = values.length ? Math.max(...values) : 1;
    const pad = (hi - lo) * 0.15 || Math.abs(hi) * 0.1 || 1;
    lo -= pad;
    hi += pad;
    const t0 = pts[0].t;
    const t1 = Math.max(pts[pts.length - 1].t, t0 + 1000);
    const { x, y } = frame(svg, t0, t1, lo, hi, round);
    // The threshold range as it was at each tick (a template may change between runs).
    for (const bound of ["min", "max"]) {
      const at = pts.filter((p) => typeof p[bound] === "number");
      if (!at.length) continue;
      let path = `M${x(at[0].t)},${y(at[0][bound])}`;
      for (const p of at.slice(1)) path += ` H${x(p.t)} V${y(p[bound])}`;
      path += ` H${x(t1)}`;
      svg.append(el("svg:path", { class: `threshold ${bound}`, d: path }));
    }
    const measured = pts.filter((p) => typeof p.value === "number");
    if (measured.length > 1) {
      const line = measured.map((p, i) => `${i ? "L" : "M"}${x(p.t)},${y(p.value)}`).join(" ");
      svg.append(el("svg:path", { class: "series", d: line }));
    }
    for (const p of measured) {
      const dot = el("svg:circle", { class: `point ${p.verdict}`, cx: x(p.t), cy: y(p.value), r: 3.5 });
      const range = `${p.min ?? "−∞"} … ${p.max ?? "∞"}`;
      dot.append(el("svg:title", {}, `${clock(p.t)}: ${round(p.value)} (${p.verdict}; range ${range})`));
      svg.append(dot);
    }
  }
}

function drawEvents(events) {
  const list = $("events");
  list.replaceChildren();
  for (const e of [...events].reverse()) {
    const li = el("li", { class: e.type });
    li.append(el("time", {}, clock(e.t)), e.message);
    list.append(li);
  }
  if (!events.length) list.append(el("li", { class: "muted" }, "No events recorded since the controller started."));
}

function drawDecisions(decisions) {
  const body = $("decisions").tBodies[0];
  body.replaceChildren();
  for (const d of [...decisions].reverse()) {
    const checks = el("td");
    for (const c of d.checks || []) {
      const value = typeof c.value === "number" ? round(c.value) : "no value";
      const range = `${c.min ?? "−∞"} … ${c.max ?? "∞"}`;
      checks.append(el("span", { class: `check ${c.verdict}` }, `${c.name}: ${value} [${range}] ${c.verdict}`));
    }
    for (const w of d.webhooks || []) {
      checks.append(el("span", { class: `check ${w.ok ? "pass" : "fail"}` }, `${w.type} ${w.name}: ${w.ok ? "ok" : "failed"}`));
    }
    const tr = el("tr");
    tr.append(
      el("td", {}, clock(Date.parse(d.time))),
      el("td", {}, d.phase || "new"),
      el("td", {}, d.canaryWeight + "%"),
      el("td", {}, d.step.summary || d.step.action),
      checks,
    );
    body.append(tr);
  }
}

// ---- live updates ------------------------------------------------------------------------

function connect() {
  const status = $("connection");
  const stream = new EventSource("api/stream");
  stream.addEventListener("open", () => {
    status.dataset.state = "live";
    status.textContent = "live";
    loadList(); // also after a reconnection: changes may have been missed
  });
  stream.addEventListener("error", () => {
    status.dataset.state = "reconnecting";
    status.textContent = "reconnecting…";
  });
  stream.addEventListener("canary", (e) => {
    const row = JSON.parse(e.data);
    upsertRow(row);
    if (!selected) select(row.key);
    else if (row.key === selected) refreshDetail();
  });
  stream.addEventListener("removed", (e) => removeRow(JSON.parse(e.data).key));
  stream.addEventListener("resync", () => loadList());
}

$("filter").addEventListener("input", () => rows.forEach(applyFilter));
connect();
