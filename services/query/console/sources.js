// The sources screen: list, create (the secret shown once), rotate, delete, deliveries.

import * as api from "./api.js";
import { el, say, screen, show, when } from "./dom.js";

export async function enter() {
  const list = el("div", { id: "source-list" }, el("p", { class: "empty", text: "Loading sources…" }));
  const reveal = el("div", { id: "reveal" });
  const details = el("div", { id: "deliveries" });
  screen("Sources", createForm(reveal, list), reveal, list, details);
  await refresh(list, reveal, details);
}

async function refresh(list, reveal, details) {
  const items = await api.listSources();
  if (!items.length) {
    list.replaceChildren(el("p", { class: "empty card", text: "No sources yet: create one above, then send it a signed event." }));
    return;
  }
  const rows = items.map((source) => el("tr", { "data-source": source.id },
    el("th", { scope: "row", text: source.label }),
    el("td", {}, el("code", { text: source.id })),
    el("td", { class: "number", text: show(source.eventCount ?? 0) }),
    el("td", {}, when(source.lastEventAt)),
    el("td", { class: "actions" },
      el("button", { type: "button", text: "Deliveries", "aria-label": `Deliveries of ${source.label}`,
        onclick: () => showDeliveries(source, details) }),
      el("button", { type: "button", text: "Rotate secret", "aria-label": `Rotate the secret of ${source.label}`,
        onclick: () => rotate(source, reveal, list, details) }),
      el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${source.label}`,
        onclick: () => confirmDelete(source, list, reveal, details) }))));
  list.replaceChildren(el("div", { class: "scroll card" }, el("table", {},
    el("thead", {}, el("tr", {}, ...["Label", "Id", "Events", "Last event", "Actions"].map((c) => el("th", { scope: "col", text: c })))),
    el("tbody", {}, ...rows))));
}

function createForm(reveal, list) {
  const error = el("p", { class: "field-error", id: "err-label", role: "alert" });
  const form = el("form", { class: "card row", "aria-label": "Create a source" },
    el("label", { for: "new-label", text: "New source label" }),
    el("input", { id: "new-label", name: "label", required: true, maxlength: 200, placeholder: "Orders", "aria-describedby": "err-label" }),
    el("label", { for: "new-signing", text: "Signing" }),
    el("select", { id: "new-signing", name: "signing" },
      el("option", { value: "hmac", text: "Shared secret (HMAC)" }),
      el("option", { value: "ed25519", text: "ed25519 key pair" })),
    el("button", { type: "submit", text: "Create source" }),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const body = { label: form.label.value.trim() };
      let privateKey = null;
      if (form.signing.value === "ed25519") {
        const pair = await ed25519Pair();
        body.signing = "ed25519";
        body.publicKey = pair.publicKey;
        privateKey = pair.privateKey;
      }
      const created = await api.createSource(body);
      form.reset();
      panel(reveal, created, privateKey, "created");
      await refresh(list, reveal, document.getElementById("deliveries"));
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return form;
}

// An ed25519 pair made in this browser: Inlet gets the public key, the partner the private one.
async function ed25519Pair() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
  return { publicKey: `whpk_${b64(raw)}`, privateKey: b64(pkcs8) };
}

function snippet(source, secret) {
  return [
    "# Python: sign and send one event (Inlet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>)",
    "import hashlib, hmac, json, time, uuid, requests",
    `secret = "${secret}"  # from your secret store, not your code`,
    'body = json.dumps({"amount": 1}).encode()',
    "t = int(time.time())",
    'sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()',
    `requests.post("${source.url}", data=body, headers={`,
    '    "Content-Type": "application/json",',
    '    "Idempotency-Key": str(uuid.uuid4()),',
    '    "Inlet-Signature": f"t={t},v1={sig}",',
    "})",
  ].join("\n");
}

// The secret (or private key), shown once, with a copy button and the partner's snippet.
function panel(reveal, source, privateKey, what) {
  const secret = privateKey ?? source.secret;
  const kind = privateKey ? "private key (PKCS #8, base64)" : "signing secret";
  const value = el("code", { id: "revealed-secret", class: "secret", text: secret });
  const copied = el("span", { class: "copied", role: "status" });
  const copy = el("button", { type: "button", id: "copy-secret", text: `Copy ${privateKey ? "private key" : "secret"}`,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(secret);
        copied.textContent = "Copied.";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(value);
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        copied.textContent = "Selected: press Ctrl+C to copy.";
      }
    } });
  const close = el("button", { type: "button", text: "I have stored it", onclick: () => reveal.replaceChildren() });
  reveal.replaceChildren(el("section", { class: "card reveal", role: "region", "aria-labelledby": "reveal-title" },
    el("h2", { id: "reveal-title", text: `Source “${source.label}” ${what}: its ${kind}` }),
    el("p", { class: "warning", text: `Shown once: copy it now. Inlet ${privateKey ? "never had this key" : "shows it only this time"}; if it is lost, rotate it.` }),
    el("p", {}, value, " ", copy, " ", copied),
    el("p", {}, "Receiver URL: ", el("code", { id: "revealed-url", text: source.url })),
    privateKey
      ? el("p", { text: "Sign with Standard Webhooks v1a (ed25519 over <webhook-id>.<webhook-timestamp>.<body>); see examples/ed25519_send.py in the repository." })
      : el("pre", { class: "snippet", "aria-label": "Partner snippet", text: snippet(source, secret) }),
    close));
  copy.focus();
}

async function rotate(source, reveal, list, details) {
  try {
    let body = { graceSeconds: 0 };
    let privateKey = null;
    if (source.signing === "ed25519") {
      const pair = await ed25519Pair();
      body = { publicKey: pair.publicKey, graceSeconds: 0 };
      privateKey = pair.privateKey;
    }
    const rotated = await api.rotateSecret(source.id, body);
    panel(reveal, rotated, privateKey, "rotated");
    say(`The secret of ${source.label} was rotated; the old one no longer verifies.`);
    await refresh(list, reveal, details);
  } catch (err) {
    say(`Rotation failed: ${err.message}`);
  }
}

function confirmDelete(source, list, reveal, details) {
  const dialog = el("dialog", { class: "card", "aria-labelledby": "confirm-title" },
    el("h2", { id: "confirm-title", text: `Delete source “${source.label}”?` }),
    el("p", { text: `It stops accepting events at once (${source.id}); its events and rollups are deleted, and its blocks report “source deleted”.` }));
  const cancel = el("button", { type: "button", text: "Cancel", onclick: () => dialog.close() });
  const confirm = el("button", { type: "button", class: "danger", text: `Delete “${source.label}”`,
    onclick: async () => {
      dialog.close();
      try {
        await api.deleteSource(source.id);
        say(`Deleted ${source.label}.`);
        details.replaceChildren();
        await refresh(list, reveal, details);
      } catch (err) {
        say(`Delete failed: ${err.message}`);
      }
    } });
  dialog.append(el("p", { class: "actions" }, cancel, " ", confirm));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  cancel.focus();
}

async function showDeliveries(source, details) {
  const load = async () => {
    const items = await api.deliveries(source.id);
    const rows = items.map((d) => el("tr", { class: `delivery ${d.status}` },
      el("td", {}, when(d.at)),
      el("td", { class: "status", text: String(d.status) }),
      el("td", { class: "reason", text: show(d.code) }),
      el("td", { text: show(d.scheme) }),
      el("td", {}, el("code", { text: show(d.keyId) })),
      el("td", { class: "number", text: show(d.size) }),
      el("td", {}, el("code", { text: show(d.idempotencyKey) }))));
    const table = items.length
      ? el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, ...["Time", "Status", "Reason", "Scheme", "Key id", "Bytes", "Idempotency key"].map((c) => el("th", { scope: "col", text: c })))),
        el("tbody", {}, ...rows)))
      : el("p", { class: "empty", text: "No deliveries yet: sign an event with this source's secret and post it to its URL." });
    details.replaceChildren(el("section", { class: "card", "aria-labelledby": "deliveries-title" },
      el("h2", { id: "deliveries-title", text: `Deliveries of “${source.label}”` }),
      el("p", {}, el("button", { type: "button", id: "reload-deliveries", text: "Reload deliveries", onclick: () => load().catch((e) => say(e.message)) })),
      table));
  };
  await load().catch((err) => say(`Deliveries could not be loaded: ${err.message}`));
  details.scrollIntoView({ block: "nearest" });
}
