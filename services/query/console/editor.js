// The block editor: create, edit and delete a block from a form. The server validates; its
// refusal names a part of the block (error.pointer) and is shown beside that field.

import * as api from "./api.js";
import { el, say, screen } from "./dom.js";

// What each template shows, and the query and projection it starts from.
const TEMPLATES = {
  metric: { type: "webhook.aggregate", fields: (label) => ({ value: { source: "value", format: "number" }, label: { literal: label } }) },
  table: { type: "webhook.list", fields: () => ({ rows: { source: "$" } }) },
  json: { type: "webhook.latest", fields: () => ({ body: { source: "$" } }) },
  chart: { type: "webhook.series", fields: (label) => ({ points: { source: "$" }, label: { literal: label } }) },
};
const TYPES = ["webhook.aggregate", "webhook.series", "webhook.list", "webhook.latest"];
const PARAMS = {
  "webhook.aggregate": ["window", "op", "field"],
  "webhook.series": ["window", "bucket", "op", "field"],
  "webhook.list": ["limit", "sortBy", "order"],
  "webhook.latest": [],
};
const ALL_PARAMS = ["window", "bucket", "op", "field", "limit", "sortBy", "order"];

function field(name, label, control, hint) {
  control.id = `f-${name}`;
  control.name = name;
  control.setAttribute("aria-describedby", `err-${name}`);
  return el("div", { class: "field", id: `field-${name}` },
    el("label", { for: control.id, text: label }),
    control,
    hint ? el("small", { text: hint }) : null,
    el("p", { class: "field-error", id: `err-${name}`, role: "alert" }));
}

const options = (values) => values.map((v) => el("option", { value: v, text: v }));

export async function enter([blockId]) {
  const sources = await api.listSources();
  const existing = blockId ? await api.getBlock(blockId) : null;
  if (!sources.length) {
    screen("New block", el("div", { class: "empty card" },
      el("p", { text: "No sources yet: a block shows one source's events, so create a source first." }),
      el("a", { href: "#sources", class: "button", text: "Create a source" })));
    return;
  }
  const form = el("form", { class: "card editor", novalidate: true },
    field("blockId", "Block id", el("input", { required: true, placeholder: "errors-last-hour", autocomplete: "off" }),
      "1-128 of A-Z a-z 0-9 _ . : -, unique among your blocks"),
    field("source", "Source", el("select", {}, ...sources.map((s) => el("option", { value: s.id, text: `${s.label} (${s.id})` })))),
    field("template", "Template", el("select", {}, ...options(Object.keys(TEMPLATES)))),
    field("label", "Label", el("input", { placeholder: "Errors (1h)" })),
    field("type", "Query", el("select", {}, ...options(TYPES))),
    field("window", "Window", el("select", {}, ...options(["15m", "1h", "24h", "7d"]))),
    field("bucket", "Bucket", el("select", {}, ...options(["1m", "5m", "1h", "1d"]))),
    field("op", "Operation", el("select", {}, ...options(["count", "sum", "avg"]))),
    field("field", "Field (a path into the event)", el("input", { placeholder: "amount or $.order.total" })),
    field("limit", "Rows", el("input", { type: "number", min: 1, max: 100, value: 10 })),
    field("sortBy", "Sort by (a path, optional)", el("input", {})),
    field("order", "Order", el("select", {}, ...options(["desc", "asc"]))),
    field("projection", "Projection (JSON)", el("textarea", { rows: 6, spellcheck: "false" }),
      "Maps widget fields to paths into the query's result, or literals"),
    el("p", { class: "field-error", id: "err-form", role: "alert" }),
    el("p", { class: "actions" },
      el("button", { type: "submit", text: existing ? "Save block" : "Create block" }),
      existing ? el("button", { type: "button", class: "danger", id: "delete-block", text: "Delete block" }) : null));
  const get = (name) => form.elements.namedItem(name);
  let projectionEdited = false;
  get("projection").addEventListener("input", () => { projectionEdited = true; });

  const showParams = () => {
    const wanted = PARAMS[get("type").value];
    for (const name of ALL_PARAMS) form.querySelector(`#field-${name}`).hidden = !wanted.includes(name);
  };
  const defaultProjection = () => {
    if (projectionEdited) return;
    const fields = TEMPLATES[get("template").value].fields(get("label").value || get("blockId").value);
    get("projection").value = JSON.stringify({ fields }, null, 2);
  };
  get("template").addEventListener("change", () => {
    get("type").value = TEMPLATES[get("template").value].type;
    if (get("type").value === "webhook.series") get("bucket").value = "1m";
    showParams();
    defaultProjection();
  });
  get("type").addEventListener("change", showParams);
  get("label").addEventListener("input", defaultProjection);

  if (existing) {
    const { binding, widget } = existing;
    const params = binding.queryConfig.params || {};
    get("blockId").value = existing.id;
    get("blockId").readOnly = true;
    get("source").value = binding.dataSourceId;
    get("template").value = widget.template in TEMPLATES ? widget.template : "json";
    get("type").value = binding.queryConfig.type;
    get("label").value = binding.projection.fields?.label?.literal ?? "";
    for (const name of ALL_PARAMS) if (params[name] !== undefined && params[name] !== null) get(name).value = params[name];
    get("projection").value = JSON.stringify(binding.projection, null, 2);
    projectionEdited = true;
  } else {
    get("template").value = "metric";
    get("type").value = "webhook.aggregate";
    get("window").value = "1h";
    defaultProjection();
  }
  showParams();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    let projection;
    try {
      projection = JSON.parse(get("projection").value);
    } catch (err) {
      return fail("projection", `not JSON: ${err.message}`);
    }
    const type = get("type").value;
    const params = {};
    for (const name of PARAMS[type]) {
      const value = get(name).value.trim();
      if (value === "") continue;
      params[name] = name === "limit" ? Number(value) : value;
    }
    const body = {
      binding: { dataSourceId: get("source").value, queryConfig: { type, params }, projection },
      widget: { template: get("template").value },
    };
    try {
      await api.putBlock(get("blockId").value.trim(), body);
      say(`Saved block ${get("blockId").value.trim()}.`);
      window.location.hash = "#blocks";
    } catch (err) {
      fail(fieldOf(err), err.message);
    }
  });

  form.querySelector("#delete-block")?.addEventListener("click", async () => {
    if (!window.confirm(`Delete block “${existing.id}”?`)) return;
    try {
      await api.deleteBlock(existing.id);
      say(`Deleted block ${existing.id}.`);
      window.location.hash = "#blocks";
    } catch (err) {
      fail("form", err.message);
    }
  });

  function fail(name, message) {
    const target = document.getElementById(`err-${name}`) || document.getElementById("err-form");
    target.textContent = message;
    const control = get(name);
    if (control && control.focus) {
      control.setAttribute("aria-invalid", "true");
      control.focus();
    }
  }

  screen(existing ? `Edit block ${existing.id}` : "New block", form);
  get(existing ? "template" : "blockId").focus();
}

// Which form field a refusal names (its JSON Pointer into the block, or its code).
function fieldOf(err) {
  const pointer = err.pointer || "";
  if (err.code === "bad_id") return "blockId";
  if (pointer.startsWith("/binding/dataSourceId")) return "source";
  const param = pointer.match(/^\/binding\/queryConfig\/params\/(\w+)/);
  if (param) return param[1];
  if (pointer.startsWith("/binding/queryConfig")) return "type";
  if (pointer.startsWith("/binding/projection")) return "projection";
  if (pointer.startsWith("/widget/template")) return "template";
  return "form";
}
