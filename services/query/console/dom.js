// Building the page from data: every string goes in as text (textContent), never as HTML.
// Tenants and partners write labels, widget data and event bodies; none of it is markup here.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

// A time in the viewer's own zone, with the exact instant in the element's datetime.
export function when(iso) {
  if (!iso) return el("span", { text: "never" });
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return el("span", { text: String(iso) });
  return el("time", { datetime: iso, title: iso, text: at.toLocaleString() });
}

// Any JSON value as one line of text (strings as they are).
export function show(value) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number") return value.toLocaleString(undefined, { maximumFractionDigits: 6 });
  return JSON.stringify(value);
}

export function say(message) {
  document.getElementById("status").textContent = message;
}

export function screen(title, ...children) {
  const main = document.getElementById("main");
  main.replaceChildren(el("h1", { text: title }), ...children);
  return main;
}
