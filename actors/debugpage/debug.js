// The Cask debug page: polls ./peers once a second and draws the node,
// its peers (with an SRTT plot each) and the membership views. Nothing
// here is loaded from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 1000;
const MIN_WINDOW_MS = 60 * 1000;

const $ = (id) => document.getElementById(id);

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (parent) parent.appendChild(el);
  return el;
}

function html(tag, cls, parent, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  if (parent) parent.appendChild(el);
  return el;
}

function clockTime(t) {
  return new Date(t).toLocaleTimeString([], { hour12: false });
}

function duration(ms) {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + (s % 60) + "s";
  const h = Math.floor(m / 60);
  return h + "h " + (m % 60) + "m";
}

function fmtMS(v) {
  if (v >= 100) return v.toFixed(0) + " ms";
  if (v >= 10) return v.toFixed(1) + " ms";
  return v.toFixed(2) + " ms";
}

function fmtCount(n) {
  return n.toLocaleString("en-US");
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

// niceStep returns a round step so that max/step gives about 4 lines.
function niceStep(max) {
  const raw = max / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

// decimals is how many digits after the point show every multiple of
// step exactly (step is 1, 2, 2.5 or 5 times a power of ten).
function decimals(step) {
  for (let d = 0; d < 6; d++) {
    if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-9) return d;
  }
  return 6;
}

// ---- the overlay graph -------------------------------------------------

function drawGraph(state) {
  const g = $("graph");
  while (g.firstChild) g.removeChild(g.firstChild);
  const active = state.membership.active || [];
  const passive = (state.membership.passive || []).filter((n) => !active.includes(n));
  const others = state.peers
    .filter((p) => !active.includes(p.name) && !passive.includes(p.name) &&
      (p.state === "connected" || p.state === "closing"))
    .map((p) => p.name);
  const byName = new Map(state.peers.map((p) => [p.name, p]));
  const ring = (names, radius, cls, phase) => names.map((name, i) => {
    const a = phase + (2 * Math.PI * i) / names.length - Math.PI / 2;
    return { name, cls, x: radius * Math.cos(a), y: radius * Math.sin(a) };
  });
  const nodes = [
    ...ring(active, 110, "active", 0),
    ...ring(others, 150, "other", Math.PI / 7),
    ...ring(passive, 195, "passive", Math.PI / Math.max(passive.length, 1)),
  ];
  const edges = svg("g", {}, g);
  for (const n of nodes) {
    svg("line", { class: "edge " + n.cls, x1: 0, y1: 0, x2: n.x, y2: n.y, "data-peer": n.name }, edges);
  }
  const dots = svg("g", {}, g);
  for (const n of nodes) {
    const p = byName.get(n.name);
    const c = svg("circle", { cx: n.x, cy: n.y, r: 9, fill: stateColor(p ? p.state : "not_connected"),
      class: "peer-dot " + n.cls, "data-peer": n.name }, dots);
    svg("title", {}, c).textContent = n.name + " (" + n.cls + (p ? ", " + p.state : "") + ")";
    const right = n.x >= -1;
    const t = svg("text", { x: n.x + (right ? 13 : -13), y: n.y + 4, "text-anchor": right ? "start" : "end" }, dots);
    t.textContent = n.name;
  }
  svg("circle", { cx: 0, cy: 0, r: 13, class: "self" }, dots);
  const self = svg("text", { x: 0, y: 32, "text-anchor": "middle", class: "self" }, dots);
  self.textContent = state.node.name;
}

function stateColor(s) {
  const css = getComputedStyle(document.documentElement);
  switch (s) {
    case "connected": return css.getPropertyValue("--up").trim();
    case "connecting": case "closing": return css.getPropertyValue("--warn").trim();
    case "unreachable": case "down": return css.getPropertyValue("--down").trim();
    default: return css.getPropertyValue("--idle").trim();
  }
}

// ---- one peer's card ---------------------------------------------------

const cards = new Map();

function card(name) {
  let c = cards.get(name);
  if (c) return c;
  const el = html("div", "peer");
  el.dataset.name = name;
  const head = html("div", "peer-head", el);
  html("span", "peer-name", head, name);
  const badge = html("span", "badge", head);
  const since = html("span", "since", head);
  const views = html("span", "views", head);
  const facts = html("div", "facts", el);
  const plot = svg("svg", { class: "srtt-plot", viewBox: "0 0 600 150" }, el);
  const migrations = html("div", "migrations", el);
  c = { el, badge, since, views, facts, plot, migrations };
  cards.set(name, c);
  return c;
}

function fact(parent, label, value, cls) {
  const s = html("span", cls, parent);
  html("i", "", s, label);
  html("b", "", s, value);
}

function drawPeer(c, p, state) {
  const now = Date.parse(state.now);
  c.badge.className = "badge " + p.state;
  c.badge.textContent = p.state.replace("_", " ");
  const since = Date.parse(p.since);
  c.since.textContent = "since " + clockTime(since) + " (" + duration(now - since) + ")" +
    (p.down_reason ? " — " + p.down_reason : "");
  const v = [];
  if (p.active_view) v.push("active view");
  if (p.passive_view) v.push("passive view");
  c.views.textContent = v.join(", ");

  c.facts.textContent = "";
  if (p.state === "connected" || p.state === "closing") {
    fact(c.facts, "srtt", fmtMS(p.srtt_ms), "srtt-now");
    fact(c.facts, "role", p.role);
    fact(c.facts, "path", p.local_address + " → " + p.remote_address);
    fact(c.facts, "incarnation", p.incarnation);
    fact(c.facts, "cwnd", fmtBytes(p.congestion_window));
  }
  if (p.messages) {
    fact(c.facts, "messages", "↑" + fmtCount(p.messages.sent) + " ↓" + fmtCount(p.messages.received), "messages");
    fact(c.facts, "bytes", "↑" + fmtBytes(p.messages.bytes_sent) + " ↓" + fmtBytes(p.messages.bytes_received));
    fact(c.facts, "sessions", fmtCount(p.messages.sessions));
  }
  fact(c.facts, "dead letters", fmtCount(p.dead_letters.count) +
    (p.dead_letters.last_error ? " (last: " + p.dead_letters.last_error + ")" : ""), "dead-letters");
  if (p.pending) fact(c.facts, "pending", fmtCount(p.pending));

  drawPlot(c.plot, p, state, now);
  drawMigrations(c.migrations, p);
}

function drawPlot(plot, p, state, now) {
  while (plot.firstChild) plot.removeChild(plot.firstChild);
  const W = 600, H = 150, L = 48, R = 10, T = 10, B = 20;
  const samples = p.srtt || [];
  const history = state.history_seconds * 1000;
  const first = samples.length ? samples[0].t : now;
  const span = Math.min(history, Math.max(MIN_WINDOW_MS, now - first));
  const t0 = now - span;
  let max = 1;
  for (const s of samples) max = Math.max(max, s.srtt_ms);
  const step = niceStep(max * 1.1);
  const top = Math.ceil((max * 1.1) / step) * step;
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }, plot);
    const t = svg("text", { class: "axis", x: L - 4, y: y(v) + 3, "text-anchor": "end" }, plot);
    t.textContent = (v === 0 ? "0" : v.toFixed(decimals(step))) + " ms";
  }
  const ago = svg("text", { class: "axis", x: L, y: H - 5 }, plot);
  ago.textContent = duration(span) + " ago";
  const nowText = svg("text", { class: "axis", x: W - R, y: H - 5, "text-anchor": "end" }, plot);
  nowText.textContent = "now";

  // The line, broken where samples are missing (the peer was down).
  const gap = 3 * state.sample_interval_ms;
  let d = "", area = "", prev = null, runStart = null;
  const close = (last) => { if (runStart !== null) area += "L" + x(last).toFixed(1) + "," + y(0).toFixed(1) + "Z"; };
  for (const s of samples) {
    if (s.t < t0) continue;
    const px = x(s.t).toFixed(1), py = y(s.srtt_ms).toFixed(1);
    if (prev === null || s.t - prev > gap) {
      close(prev);
      d += "M" + px + "," + py;
      area += "M" + px + "," + y(0).toFixed(1) + "L" + px + "," + py;
      runStart = s.t;
    } else {
      d += "L" + px + "," + py;
      area += "L" + px + "," + py;
    }
    prev = s.t;
  }
  close(prev);
  svg("path", { class: "area", d: area }, plot);
  const line = svg("path", { class: "srtt", d: d }, plot);
  line.dataset.points = String(samples.filter((s) => s.t >= t0).length);
  if (!samples.length) {
    const t = svg("text", { class: "axis", x: W / 2, y: H / 2, "text-anchor": "middle" }, plot);
    t.textContent = "no SRTT samples (no session)";
  }

  for (const m of p.migrations || []) {
    const at = Date.parse(m.at);
    if (at < t0) continue;
    const cls = m.error ? "failed" : "";
    svg("line", { class: "marker " + cls, x1: x(at), x2: x(at), y1: T, y2: H - B }, plot);
    const label = svg("text", { class: "marker-label " + cls, x: x(at) + 4, y: T + 10 }, plot);
    label.textContent = m.error ? "migration failed" : "migrated";
  }
}

function drawMigrations(div, p) {
  div.textContent = "";
  const ms = p.migrations || [];
  if (!ms.length) {
    html("div", "empty", div, "no migrations");
    return;
  }
  const table = html("table", "migrations", div);
  const head = html("tr", "", table);
  for (const h of ["at", "took", "from", "to", "result"]) html("th", "", head, h);
  for (const m of ms.slice().reverse()) {
    const tr = html("tr", "", table);
    html("td", "", tr, clockTime(Date.parse(m.at)));
    html("td", "", tr, fmtMS(m.took_ms));
    html("td", "", tr, m.from);
    html("td", "", tr, m.to);
    html("td", m.error ? "failed" : "", tr, m.error || "ok");
  }
}

// ---- refresh -----------------------------------------------------------

function render(state) {
  document.title = "Cask " + state.node.name;
  $("node-name").textContent = state.node.name;
  $("node-incarnation").textContent = state.node.incarnation;
  $("node-address").textContent = state.node.address;
  $("node-key").textContent = state.node.public_key;
  $("node-key").title = state.node.public_key;
  $("updated").textContent = clockTime(Date.parse(state.now));
  $("traffic-note").hidden = state.traffic_counted;
  $("peer-count").textContent = "(" + state.peers.length + ")";
  drawGraph(state);
  const list = $("peers");
  const seen = new Set();
  for (const p of state.peers) {
    seen.add(p.name);
    const c = card(p.name);
    drawPeer(c, p, state);
    list.appendChild(c.el); // keeps the order of the JSON (sorted by name)
  }
  for (const [name, c] of cards) {
    if (!seen.has(name)) {
      c.el.remove();
      cards.delete(name);
    }
  }
}

async function refresh() {
  try {
    const res = await fetch("peers", { cache: "no-store" });
    if (!res.ok) throw new Error((await res.text()).trim() || res.statusText);
    render(await res.json());
    $("error").hidden = true;
    $("live").className = "live on";
  } catch (e) {
    $("error").textContent = "cannot read the node: " + e.message;
    $("error").hidden = false;
    $("live").className = "live off";
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
