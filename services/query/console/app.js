// The console's entry: sign in, then one screen per location hash (#blocks, #sources, #editor).

import * as api from "./api.js";
import { signIn } from "./auth.js";
import * as blocks from "./blocks.js";
import { el, screen } from "./dom.js";
import * as editor from "./editor.js";
import * as sources from "./sources.js";

const screens = { blocks, sources, editor };
let current = null;

function route() {
  const [name, ...rest] = window.location.hash.replace(/^#/, "").split("/");
  const next = screens[name] || blocks;
  if (current && current.leave) current.leave();
  current = next;
  for (const link of document.querySelectorAll("#nav a")) {
    const here = link.getAttribute("href") === `#${name || "blocks"}`;
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  next.enter(rest.map(decodeURIComponent)).catch((err) => {
    screen("Something went wrong", el("p", { class: "field-error", text: err.message }));
  });
  document.getElementById("main").focus({ preventScroll: true });
}

async function start() {
  const config = await api.consoleConfig();
  api.useIngest(config.ingestUrl);
  const signOut = await signIn(config);
  document.getElementById("nav").hidden = false;
  const button = document.getElementById("sign-out");
  button.hidden = false;
  button.addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  route();
}

start().catch((err) => {
  screen("The console could not start", el("p", { class: "field-error", text: err.message }));
});
