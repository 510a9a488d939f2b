// Sign-in. Production: Clerk's frontend library with the deployment's publishable key; the
// session's token is asked from Clerk for each request. Locally: the development sign-in, a
// token the query service signs with the development issuer's key for a chosen user and
// organization. Either way the token lives in memory only (a reload signs in again locally).

import * as api from "./api.js";
import { el, say, screen } from "./dom.js";

// Resolves with a sign-out function once someone is signed in.
export async function signIn(config) {
  if (config.clerkPublishableKey && config.clerkScript) return clerkSignIn(config);
  if (config.devSignIn) return devSignIn();
  screen("Sign-in is not configured",
    el("p", { class: "empty", text: "Set CLERK_PUBLISHABLE_KEY on the query service (inlet:clerkPublishableKey in the stack config)." }));
  return new Promise(() => {});
}

function loadScript(src, publishableKey) {
  return new Promise((resolve, reject) => {
    const script = el("script", {
      src,
      async: true,
      crossorigin: "anonymous",
      "data-clerk-publishable-key": publishableKey,
    });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new Error("Clerk could not be loaded")));
    document.head.append(script);
  });
}

async function clerkSignIn(config) {
  await loadScript(config.clerkScript, config.clerkPublishableKey);
  const clerk = window.Clerk;
  await clerk.load();
  if (!clerk.user) {
    // Clerk's hosted sign-in page: no Clerk component runs inside this page, so its
    // style-src stays 'self'.
    await clerk.redirectToSignIn({ redirectUrl: window.location.href });
    return new Promise(() => {});
  }
  api.useToken(() => clerk.session.getToken());
  const org = clerk.organization ? ` · ${clerk.organization.name}` : "";
  document.getElementById("who").textContent = `${clerk.user.primaryEmailAddress?.emailAddress ?? clerk.user.id}${org}`;
  return async () => {
    await clerk.signOut();
    window.location.reload();
  };
}

function devSignIn() {
  return new Promise((resolve) => {
    const error = el("p", { class: "field-error", id: "err-dev", role: "alert" });
    const form = el("form", { class: "card narrow", "aria-describedby": "dev-note" },
      el("p", { id: "dev-note", text: "Development sign-in: the local stack signs a session token for any user you name (never in production)." }),
      el("label", { for: "dev-user", text: "User id" }),
      el("input", { id: "dev-user", name: "userId", required: true, value: "user_demo", autocomplete: "off" }),
      el("label", { for: "dev-org", text: "Organization id (optional)" }),
      el("input", { id: "dev-org", name: "orgId", placeholder: "org_…", autocomplete: "off" }),
      el("label", { for: "dev-role", text: "Role in the organization" }),
      el("select", { id: "dev-role", name: "role" },
        el("option", { value: "admin", text: "admin" }), el("option", { value: "member", text: "member" })),
      error,
      el("button", { type: "submit", text: "Sign in" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const who = {
        userId: form.userId.value.trim(),
        orgId: form.orgId.value.trim() || null,
        role: form.role.value,
      };
      try {
        let { token } = await api.devSession(who);
        api.useToken(async () => token);
        document.getElementById("who").textContent = who.orgId ? `${who.userId} · ${who.orgId}` : who.userId;
        say("");
        resolve(async () => {
          token = null;
          api.useToken(null);
          window.location.hash = "";
          window.location.reload();
        });
      } catch (err) {
        error.textContent = err.message;
      }
    });
    screen("Sign in", form);
    form.userId.focus();
  });
}
