// The blocks screen: the tenant's blocks, each drawn by its widget.template, kept live.
//
// It polls GET /v1/blocks every POLL_MS while the tab is visible, with the last ETag: an
// unchanged page is a 304 that costs the query service two Firestore reads (README "Console").
// A card is redrawn only when its block changed.

import * as api from "./api.js";
import { el, say, screen, show, svg, when } from "./dom.js";

export const POLL_MS = 1500;
let timer = null;
let etag = null;
let shown = new Map(); // block id -> the JSON it was drawn from
let grid = null;

export async function enter() {
  etag = null;
  shown = new Map();
  grid = el("div", { class: "grid", id: "blocks", "aria-live": "polite" });
  screen("Blocks", grid);
  await poll();
}

export function leave() {
  clearTimeout(timer);
  timer = null;
  grid = null;
}

async function poll() {
  clearTimeout(timer);
  const mine = grid;
  try {
    if (document.visibilityState !== "hidden") {
      const answer = await api.listBlocks(etag);
      if (mine !== grid) return; // left the screen meanwhile
      if (answer.status !== 304) {
        etag = answer.etag;
        draw(answer.data.items);
      }
      say("");
    }
  } catch (err) {
    say(`Blocks could not be loaded: ${err.message}`);
  }
  if (mine === grid) timer = setTimeout(poll, POLL_MS);
}

function draw(items) {
  if (!items.length) {
    shown = new Map();
    grid.replaceChildren(el("div", { class: "empty card" },
      el("p", { text: "No blocks yet: create one in the block editor." }),
      el("a", { href: "#editor", class: "button", text: "New block" })));
    return;
  }
  const next = new Map();
  const cards = items.map((block) => {
    const text = JSON.stringify(block);
    next.set(block.id, text);
    const old = grid.querySelector(`[data-block="${CSS.escape(block.id)}"]`);
    return old && shown.get(block.id) === text ? old : card(block);
  });
  shown = next;
  grid.replaceChildren(...cards);
}

function card(block) {
  const template = block.widget?.template ?? "";
  const data = block.widget?.data ?? {};
  let body;
  if (block.status === "error") {
    body = el("p", { class: "problem", text: `Error: ${block.message ?? "the last refresh failed"}` });
  } else if (block.status === "source-deleted") {
    body = el("p", { class: "problem", text: "Source deleted: this block's source no longer exists. Rebind it in the editor or delete it." });
  } else {
    const draw = templates[template] || drawJson;
    body = draw(data);
  }
  return el("article", { class: `card block status-${block.status}`, "data-block": block.id, "data-template": template },
    el("header", {},
      el("h2", { text: data.label ?? block.id }),
      el("span", { class: "badge", text: `${template} · ${block.status}` })),
    body,
    el("footer", {},
      el("span", {}, "Refreshed ", when(block.refreshedAt)),
      el("a", { href: `#editor/${encodeURIComponent(block.id)}`, text: "Edit", "aria-label": `Edit block ${block.id}` })));
}

function drawMetric(data) {
  return el("p", { class: "metric" },
    el("span", { class: "value", text: show(data.value) }),
    data.label !== undefined ? el("span", { class: "label", text: show(data.label) }) : null);
}

function firstArray(data, name) {
  if (Array.isArray(data[name])) return data[name];
  return Object.values(data).find(Array.isArray) ?? [];
}

// A webhook.list result: receive time, then the body's top-level fields.
function drawTable(data) {
  const rows = firstArray(data, "rows");
  if (!rows.length) return el("p", { class: "empty", text: "No events yet: send one to this block's source." });
  const bodies = rows.map((row) => (row && typeof row === "object" && "body" in row ? row.body : row));
  const columns = [];
  for (const body of bodies) {
    if (body && typeof body === "object" && !Array.isArray(body)) {
      for (const key of Object.keys(body)) if (!columns.includes(key) && columns.length < 8) columns.push(key);
    }
  }
  const head = el("tr", {}, el("th", { scope: "col", text: "Received" }),
    ...(columns.length ? columns : ["Body"]).map((c) => el("th", { scope: "col", text: c })));
  const lines = rows.map((row, i) => {
    const body = bodies[i];
    const cells = columns.length
      ? columns.map((c) => el("td", { text: body && typeof body === "object" ? show(body[c]) : "—" }))
      : [el("td", { text: show(body) })];
    return el("tr", {}, el("td", {}, when(row?.receivedAt)), ...cells);
  });
  return el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...lines)));
}

// A JSON value as a tree of <details>: pretty, collapsible, and text only.
function tree(value, key) {
  const name = key === undefined ? null : el("span", { class: "key", text: `${key}: ` });
  if (value && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const summary = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    return el("details", { open: true },
      el("summary", {}, name, summary),
      el("ul", {}, ...entries.map(([k, v]) => el("li", {}, tree(v, k)))));
  }
  return el("span", {}, name, el("span", { class: `leaf ${typeof value}`, text: JSON.stringify(value) }));
}

function drawJson(data) {
  const value = "body" in data ? data.body : data;
  if (value === null || value === undefined) return el("p", { class: "empty", text: "No events yet: send one to this block's source." });
  return el("div", { class: "json" }, tree(value));
}

// A webhook.series result as a line: one point per bucket, times in the viewer's zone.
function drawChart(data) {
  const points = firstArray(data, "points").filter((p) => p && p.t);
  if (!points.length) return el("p", { class: "empty", text: "No points yet." });
  const values = points.map((p) => (typeof p.value === "number" ? p.value : 0));
  const top = Math.max(...values, 0);
  const bottom = Math.min(...values, 0);
  const span = top - bottom || 1;
  const width = 300;
  const height = 100;
  const step = points.length > 1 ? width / (points.length - 1) : 0;
  const line = values.map((v, i) => `${(i * step).toFixed(1)},${(height - ((v - bottom) / span) * height).toFixed(1)}`).join(" ");
  const chart = svg("svg", { viewBox: `0 -4 ${width} ${height + 8}`, class: "chart", role: "img", preserveAspectRatio: "none" });
  chart.append(svg("polyline", { points: line, fill: "none", stroke: "currentColor", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  const total = points.reduce((sum, p) => sum + (p.count || 0), 0);
  const first = new Date(points[0].t).toLocaleString();
  const last = new Date(points[points.length - 1].t).toLocaleString();
  const description = `${points.length} points from ${first} to ${last}; highest ${show(top)}; ${total} values counted`;
  chart.setAttribute("aria-label", description);
  return el("figure", { class: "series" }, chart,
    el("figcaption", {}, el("span", { text: first }), el("span", { text: `max ${show(top)}` }), el("span", { text: last })));
}

const templates = { metric: drawMetric, table: drawTable, json: drawJson, chart: drawChart };
