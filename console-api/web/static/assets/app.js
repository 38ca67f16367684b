// The console page: a hash router over the pages, the sign-in form, and
// the caller's role (GET /whoami), which decides whether write buttons are
// shown at all. The API refuses writes by role whatever the page shows.
import { api, ApiError, token, setToken } from "./api.js";
import { h } from "./dom.js";
import { searchPage } from "./search.js";
import { messagePage } from "./message.js";
import { topicsPage } from "./topics.js";
import { delayedPage } from "./delayed.js";
import { healthPage } from "./health.js";
import { deadLettersPage } from "./deadletters.js";
import { registryPage, auditPage } from "./registry.js";

const pages = {
  search: searchPage,
  message: messagePage,
  topics: topicsPage,
  delayed: delayedPage,
  health: healthPage,
  "dead-letters": deadLettersPage,
  registry: registryPage,
  audit: auditPage,
};

// ctx is what every page gets: who the caller is and the page helpers.
export const ctx = {
  who: null, // {app, role, open}
  can(role) {
    const rank = { viewer: 0, operator: 1, admin: 2 };
    return this.who && rank[this.who.role] >= rank[role];
  },
  status(text) { document.getElementById("status").textContent = text || ""; },
  error(err) {
    const el = document.getElementById("alert");
    if (!err) { el.hidden = true; el.textContent = ""; return; }
    el.hidden = false;
    el.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : String(err.message || err);
  },
  go(hash) { location.hash = hash; },
};

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "search", args: parts.slice(1), query: new URLSearchParams(qs || "") };
}

async function route() {
  const main = document.getElementById("main");
  if (!ctx.who) return;
  const { page, args, query } = parseHash();
  const render = pages[page] || searchPage;
  for (const a of document.querySelectorAll("#nav a")) {
    const current = a.dataset.page === page || (page === "message" && a.dataset.page === "search");
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  ctx.error(null);
  main.replaceChildren();
  try {
    await render(main, { args, query, ctx });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { signOut(); return; }
    ctx.error(err);
  }
  const h1 = main.querySelector("h1");
  if (h1 && !main.contains(document.activeElement)) { h1.tabIndex = -1; h1.focus(); }
}

function showWho() {
  const who = document.getElementById("who");
  who.replaceChildren(
    h("span", {}, ctx.who.open ? "open dev mode" : "signed in as " + ctx.who.app),
    h("span", { class: "role", "data-testid": "role" }, ctx.who.role));
  if (!ctx.who.open) who.append(h("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"));
  // Pages a role may not use (the audit log for viewers) are not linked.
  for (const li of document.querySelectorAll("#nav [data-role]")) li.hidden = !ctx.can(li.dataset.role);
  document.getElementById("nav").hidden = false;
}

function signOut() {
  setToken("");
  ctx.who = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  loginPage();
}

function loginPage(message) {
  const main = document.getElementById("main");
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-hint" });
  const form = h("form", { "aria-labelledby": "login-title", onsubmit: async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    await start();
  } },
  h("div", { class: "field" }, h("label", { for: "token" }, "Console token"), input,
    h("p", { class: "hint", id: "token-hint" }, "The bearer token of an app with the console permission. It is kept in this tab only.")),
  h("div", {}, h("button", { type: "submit" }, "Sign in")));
  main.replaceChildren(h("section", { class: "login" }, h("h1", { id: "login-title" }, "Sign in to the console"),
    message ? h("p", { class: "alert", role: "alert" }, message) : null, form));
  input.focus();
}

async function start() {
  ctx.error(null);
  try {
    ctx.who = await api("/whoami");
  } catch (err) {
    ctx.who = null;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      const had = token() !== "";
      setToken("");
      loginPage(had ? err.message : undefined);
      return;
    }
    ctx.error(err);
    return;
  }
  showWho();
  await route();
}

window.addEventListener("hashchange", route);
start();
