"""The replay page: one HTML file with its styles, script and data inside (no network, no external files).

Nothing from a data or results file is ever written into the HTML itself: everything goes into one JSON
``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are escaped, and the page's script puts
text on screen with ``textContent`` only, so an instruction holding ``<script>`` or ``onerror=`` shows as text
and never runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from envs.atomic import write_bytes

STYLE = """
[hidden] { display: none !important; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #f6f6f4; }
header { padding: 10px 16px; background: #23395d; color: white; display: flex; gap: 16px; align-items: baseline; }
header h1 { font-size: 17px; margin: 0; }
main { display: grid; grid-template-columns: minmax(360px, 460px) 1fr; gap: 12px; padding: 12px; }
#index-panel { background: white; border: 1px solid #ddd; padding: 8px; max-height: calc(100vh - 80px); overflow: auto; }
#index { border-collapse: collapse; width: 100%; font-size: 13px; }
#index th { position: sticky; top: 0; background: #eef; cursor: pointer; user-select: none; text-align: left; padding: 3px 5px; }
#index th.sorted::after { content: attr(data-dir); }
#index td { padding: 2px 4px; border-top: 1px solid #eee; white-space: nowrap; }
#index tr.fail td:first-child { border-left: 3px solid #d33; }
#index tr.ok td:first-child { border-left: 3px solid #2e9e44; }
#index tbody tr { cursor: pointer; }
#index tbody tr.current { background: #fff3c4; }
#episode { background: white; border: 1px solid #ddd; padding: 10px 14px; display: grid;
           grid-template-columns: 600px 1fr; gap: 10px 18px; align-content: start; }
#episode h2 { grid-column: 1 / 3; font-size: 16px; margin: 0; }
#ep-metrics { grid-column: 1 / 3; font-size: 13px; color: #444; }
#ep-metrics b { color: #111; }
#map { width: 600px; height: 480px; border: 1px solid #ccc; background: #fcfcfa; }
#floors button.active { background: #23395d; color: white; }
#controls { display: flex; gap: 6px; align-items: center; margin: 6px 0; }
#slider { flex: 1; }
#view { width: 320px; height: 240px; border: 1px solid #ccc; background: #111; display: block; }
#no-view { width: 320px; height: 240px; border: 1px dashed #bbb; color: #888; display: flex;
           align-items: center; justify-content: center; }
#instruction { line-height: 1.9; }
#attention { line-height: 1.9; }
#attention span.tok { padding: 1px 2px; border-radius: 3px; }
#attention span.special { color: #999; font-size: 11px; }
#candidates { list-style: none; padding: 0; margin: 0; font: 12px monospace; }
#candidates li { display: grid; grid-template-columns: 170px 1fr 52px; gap: 6px; align-items: center; }
#candidates li.taken { font-weight: bold; }
#candidates .bar { height: 9px; background: #f28e1c; }
.legend span { margin-right: 12px; }
.muted { color: #777; }
"""

SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("replay-data").textContent);
const SVGNS = "http://www.w3.org/2000/svg";
const COLUMNS = [["id", "episode"], ["scan", "house"], ["success", "SR"], ["spl", "SPL"],
                 ["nav_error", "NE"], ["ndtw", "nDTW"], ["steps", "steps"]];
const state = {episode: null, step: 0, floor: 0, timer: null, sortKey: null, sortDir: 1};
const byId = new Map(DATA.episodes.map(e => [e.id, e]));

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function fmt(key, value) {
  if (value === null || value === undefined) return "–";
  if (["success", "spl", "ndtw", "sdtw", "oracle_success"].includes(key)) return (100 * value).toFixed(1);
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

// ---------------------------------------------------------------------------------------------- index
function buildIndex() {
  const head = document.querySelector("#index thead tr");
  for (const [key, label] of COLUMNS) {
    const th = el("th", {"data-key": key}, label);
    th.addEventListener("click", () => {
      state.sortDir = state.sortKey === key ? -state.sortDir : 1;
      state.sortKey = key;
      fillIndex();
    });
    head.appendChild(th);
  }
  document.getElementById("failures").addEventListener("change", fillIndex);
  fillIndex();
}
function value(episode, key) {
  return key === "id" || key === "scan" ? episode[key] : (episode.metrics || {})[key];
}
function fillIndex() {
  const body = document.querySelector("#index tbody");
  body.replaceChildren();
  let rows = DATA.episodes.slice();
  if (document.getElementById("failures").checked) rows = rows.filter(e => (e.metrics || {}).success === 0);
  if (state.sortKey) {
    const key = state.sortKey, dir = state.sortDir;
    rows.sort((a, b) => {
      const x = value(a, key), y = value(b, key);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  for (const th of document.querySelectorAll("#index th")) {
    const on = th.dataset.key === state.sortKey;
    th.classList.toggle("sorted", on);
    th.dataset.dir = on ? (state.sortDir > 0 ? " ▲" : " ▼") : "";
  }
  for (const episode of rows) {
    const success = (episode.metrics || {}).success;
    const tr = el("tr", {"data-id": episode.id, "class": success === 1 ? "ok" : success === 0 ? "fail" : ""});
    for (const [key] of COLUMNS) tr.appendChild(el("td", {}, key === "id" || key === "scan" ? value(episode, key)
                                                                 : fmt(key, value(episode, key))));
    tr.addEventListener("click", () => show(episode.id));
    if (state.episode && state.episode.id === episode.id) tr.classList.add("current");
    body.appendChild(tr);
  }
  document.getElementById("count").textContent = rows.length + " of " + DATA.episodes.length + " episodes";
}

// ---------------------------------------------------------------------------------------------- episode
function houseMap(episode) {
  const map = DATA.maps[episode.scan];
  if (!map.index) map.index = new Map(map.ids.map((id, k) => [id, k]));
  return map;
}
function show(id) {
  const episode = byId.get(id);
  state.episode = episode;
  state.step = 0;
  stop();
  const slider = document.getElementById("slider");
  slider.max = episode.trajectory.length - 1;
  document.getElementById("ep-title").textContent = episode.id + " — house " + episode.scan +
      (episode.language && episode.language !== "en" ? " (" + episode.language + ")" : "");
  const metrics = document.getElementById("ep-metrics");
  metrics.replaceChildren();
  for (const [key, label] of [["success", "SR"], ["spl", "SPL"], ["nav_error", "NE (m)"], ["ndtw", "nDTW"],
                              ["sdtw", "SDTW"], ["oracle_success", "OSR"], ["length", "TL (m)"], ["steps", "steps"]]) {
    metrics.appendChild(el("span", {}, label + " "));
    metrics.appendChild(el("b", {}, fmt(key, (episode.metrics || {})[key])));
    metrics.appendChild(document.createTextNode("   "));
  }
  for (const tr of document.querySelectorAll("#index tbody tr"))
    tr.classList.toggle("current", tr.dataset.id === id);
  drawStep(true);
}
function decisionAt(episode, step) {
  let found = null;
  for (const d of episode.decisions || []) if (d.at <= step) found = d;
  return found;
}
function drawStep(followAgent) {
  const episode = state.episode;
  const [viewpoint, heading] = episode.trajectory[state.step];
  const map = houseMap(episode);
  if (followAgent && map.index.has(viewpoint)) state.floor = map.floor[map.index.get(viewpoint)];
  document.getElementById("slider").value = state.step;
  document.getElementById("step-label").textContent = "step " + state.step + " / " + (episode.trajectory.length - 1);
  drawFloors(map);
  drawMap(episode, map, viewpoint, heading);
  drawView(episode);
  const decision = decisionAt(episode, state.step);
  drawInstruction(episode, decision);
  drawCandidates(decision);
}
function drawFloors(map) {
  const box = document.getElementById("floors");
  box.replaceChildren();
  if (map.floors.length < 2) return;
  box.appendChild(el("span", {"class": "muted"}, "floor: "));
  map.floors.forEach((z, f) => {
    const b = el("button", {"data-floor": f, "class": f === state.floor ? "active" : ""}, String(f + 1));
    b.addEventListener("click", () => { state.floor = f; drawStep(false); });
    box.appendChild(b);
  });
}
function drawMap(episode, map, viewpoint, heading) {
  const root = document.getElementById("map");
  root.replaceChildren();
  const on = map.ids.map((_, k) => map.floor[k] === state.floor);
  const xs = map.xy.filter((_, k) => on[k]).map(p => p[0]), ys = map.xy.filter((_, k) => on[k]).map(p => p[1]);
  if (!xs.length) return;
  const pad = 2 + DATA.success_distance;
  const minX = Math.min(...xs) - pad, maxX = Math.max(...xs) + pad, minY = Math.min(...ys) - pad, maxY = Math.max(...ys) + pad;
  const scale = Math.min(600 / (maxX - minX), 480 / (maxY - minY));
  const px = p => [(p[0] - minX) * scale + (600 - (maxX - minX) * scale) / 2,
                   480 - ((p[1] - minY) * scale + (480 - (maxY - minY) * scale) / 2)];
  const at = id => map.index.has(id) ? map.index.get(id) : -1;
  for (const [a, b] of map.edges) {
    if (!on[a] || !on[b]) continue;
    const [x1, y1] = px(map.xy[a]), [x2, y2] = px(map.xy[b]);
    root.appendChild(svg("line", {x1, y1, x2, y2, stroke: "#ccc", "stroke-width": 1}));
  }
  map.xy.forEach((p, k) => { if (on[k]) { const [cx, cy] = px(p); root.appendChild(svg("circle", {cx, cy, r: 2.5, fill: "#999"})); } });
  const polyline = (ids, colour, width, id) => {
    let points = [];
    const flush = () => { if (points.length > 1) root.appendChild(svg("polyline", {points: points.join(" "), fill: "none",
        stroke: colour, "stroke-width": width, "stroke-linejoin": "round", "stroke-linecap": "round", "class": id})); points = []; };
    for (const vp of ids) {
      const k = at(vp);
      if (k < 0 || !on[k]) { flush(); continue; }
      points.push(px(map.xy[k]).map(v => v.toFixed(1)).join(","));
    }
    flush();
  };
  const reference = episode.reference;
  if (reference.length) {
    polyline(reference, "#2e9e44", 5, "reference");
    const g = at(reference[reference.length - 1]);
    if (g >= 0 && on[g]) {
      const [cx, cy] = px(map.xy[g]);
      root.appendChild(svg("circle", {cx, cy, r: DATA.success_distance * scale, fill: "#2e9e44", "fill-opacity": 0.12,
                                      stroke: "#2e9e44", "stroke-opacity": 0.5}));
      root.appendChild(star(cx, cy));
    }
  }
  polyline(episode.trajectory.slice(0, state.step + 1).map(t => t[0]), "#f28e1c", 3, "walked");
  const s = at((reference.length ? reference : episode.trajectory.map(t => t[0]))[0]);
  if (s >= 0 && on[s]) { const [cx, cy] = px(map.xy[s]); root.appendChild(svg("circle", {cx, cy, r: 6, fill: "white", stroke: "black"})); }
  const k = at(viewpoint);
  if (k >= 0 && on[k]) {
    const [cx, cy] = px(map.xy[k]);
    const agent = svg("polygon", {id: "agent", points: "0,-11 7,8 -7,8", fill: "#1f5fbf", stroke: "black",
                                  transform: "translate(" + cx.toFixed(1) + "," + cy.toFixed(1) + ") rotate(" +
                                             (heading * 180 / Math.PI).toFixed(1) + ")"});
    root.appendChild(agent);
  }
}
function star(cx, cy) {
  const points = [];
  for (let i = 0; i < 10; i++) {
    const r = i % 2 ? 4 : 10, a = Math.PI * i / 5;
    points.push((cx + r * Math.sin(a)).toFixed(1) + "," + (cy - r * Math.cos(a)).toFixed(1));
  }
  return svg("polygon", {points: points.join(" "), fill: "#2e9e44", stroke: "black", "class": "goal"});
}
function drawView(episode) {
  const image = DATA.images[episode.views[state.step]];
  const view = document.getElementById("view"), none = document.getElementById("no-view");
  view.hidden = !image;
  none.hidden = !!image;
  if (image) view.src = image;
  none.textContent = Object.keys(DATA.images).length ? "no image of this view" : "no view images in this replay";
}
function drawInstruction(episode, decision) {
  document.getElementById("instruction").textContent = episode.instruction;
  const box = document.getElementById("attention");
  box.replaceChildren();
  const tokens = episode.instruction_tokens;
  document.getElementById("attention-title").hidden = !tokens;
  if (!tokens) return;
  if (!decision || !decision.attention) { box.textContent = tokens.join(" "); return; }
  const weights = decision.attention, top = Math.max(...weights, 1e-9);
  tokens.forEach((token, i) => {
    const w = (weights[i] || 0) / top;
    const span = el("span", {"class": token.startsWith("<") ? "tok special" : "tok",
                             "title": "attention " + ((weights[i] || 0) * 100).toFixed(1) + "%"}, token);
    span.style.background = "rgba(255, 176, 0, " + (0.85 * w).toFixed(3) + ")";
    box.appendChild(span);
    box.appendChild(document.createTextNode(" "));
  });
}
function drawCandidates(decision) {
  const list = document.getElementById("candidates");
  list.replaceChildren();
  if (!decision || !decision.candidates) { list.appendChild(el("li", {"class": "muted"}, "no candidate scores in this results file")); return; }
  const rows = [["STOP", decision.stop, 0]].concat(decision.candidates.map((c, k) => [c.viewpoint, c.score, k + 1]));
  if (decision.stop === undefined && !decision.candidates.length) list.appendChild(el("li", {"class": "muted"}, "nothing navigable in view"));
  for (const [name, score, action] of rows) {
    if (score === undefined && name === "STOP") continue;
    const li = el("li", {"class": decision.action === action ? "taken" : ""});
    li.appendChild(el("span", {}, (decision.action === action ? "▶ " : "  ") + name.slice(0, 16)));
    const bar = el("div", {"class": "bar"});
    bar.style.width = (100 * (score || 0)).toFixed(1) + "%";
    li.appendChild(el("div")).appendChild(bar);
    li.appendChild(el("span", {}, score === undefined || score === null ? "" : (100 * score).toFixed(1) + "%"));
    list.appendChild(li);
  }
}

// ---------------------------------------------------------------------------------------------- controls
function go(step) {
  const last = state.episode.trajectory.length - 1;
  state.step = Math.max(0, Math.min(last, step));
  drawStep(true);
}
function stop() { if (state.timer) { clearInterval(state.timer); state.timer = null; } document.getElementById("play").textContent = "▶ play"; }
function play() {
  if (state.timer) return stop();
  document.getElementById("play").textContent = "❚❚ pause";
  state.timer = setInterval(() => {
    if (state.step >= state.episode.trajectory.length - 1) return stop();
    go(state.step + 1);
  }, 600);
}
document.getElementById("prev").addEventListener("click", () => go(state.step - 1));
document.getElementById("next").addEventListener("click", () => go(state.step + 1));
document.getElementById("play").addEventListener("click", play);
document.getElementById("slider").addEventListener("input", e => go(Number(e.target.value)));
document.addEventListener("keydown", e => {
  if (e.target.tagName === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "range") return;
  if (e.key === "ArrowRight") { go(state.step + 1); e.preventDefault(); }
  else if (e.key === "ArrowLeft") { go(state.step - 1); e.preventDefault(); }
  else if (e.key === " ") { play(); e.preventDefault(); }
});

document.title = DATA.title;
document.getElementById("title").textContent = DATA.title;
buildIndex();
if (DATA.episodes.length) show(DATA.episodes[0].id);
"""

BODY = """<header><h1 id="title"></h1><span id="count"></span>
<span class="legend"><span style="color:#7fd88f">━ reference</span><span style="color:#f5b060">━ agent</span>
<span>▲ agent, pointing along its heading</span><span>★ goal (shaded: success radius)</span></span></header>
<main>
<section id="index-panel"><label><input type="checkbox" id="failures"> failures only</label>
<table id="index"><thead><tr></tr></thead><tbody></tbody></table></section>
<section id="episode"><h2 id="ep-title"></h2><div id="ep-metrics"></div>
<div><div id="floors"></div><svg id="map" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 600 480"></svg>
<div id="controls"><button id="prev" title="previous step (←)">◀</button><button id="play" title="play (space)">▶ play</button>
<button id="next" title="next step (→)">▶</button><input type="range" id="slider" min="0" value="0"><span id="step-label"></span></div></div>
<div><img id="view" alt="the agent's view"><div id="no-view" hidden></div>
<h3>Instruction</h3><p id="instruction"></p>
<h3 id="attention-title">What the agent read (shaded by its attention at this step)</h3><p id="attention"></p>
<h3>Action scores</h3><ol id="candidates"></ol></div>
</section></main>"""


def embed_json(data: dict) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` can end the
    element or start markup, and the two Unicode line separators are escaped too."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def render_page(data: dict) -> str:
    """The whole page as a string."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>replay</title><style>{STYLE}</style></head>\n<body>\n{BODY}\n"
            f"<script id=\"replay-data\" type=\"application/json\">{embed_json(data)}</script>\n"
            f"<script>{SCRIPT}</script>\n</body></html>\n")


def write_page(path: Path, data: dict) -> int:
    """Write the page atomically; returns its size in bytes."""
    page = render_page(data).encode("utf-8")
    write_bytes(path, page)
    return len(page)
