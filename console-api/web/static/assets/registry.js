// The registry (apps with their tokens, topics, subscriptions) and its
// audit log. Everyone with the console sees the registry; admins get the
// forms and buttons that change it (the API checks the role on every
// write: 403 otherwise). A new token is shown once, here, and never again.
import { api } from "./api.js";
import { h, field, table, fmtTime, state } from "./dom.js";

const list = (s) => String(s || "").split(",").map((x) => x.trim()).filter(Boolean);

export async function registryPage(main, { ctx }) {
  const admin = ctx.can("admin");
  main.append(h("h1", {}, "Registry"));
  const [apps, topics, subs] = await Promise.all([api("/registry/apps"), api("/registry/topics"), api("/registry/subscriptions")]);
  const secret = h("div", { id: "new-token-area", "aria-live": "polite" });
  main.append(secret);
  const reload = () => { ctx.status(""); return registryPage(main.replaceChildren() || main, { ctx }); };

  // showToken puts a token issued or rotated on the page, once.
  function showToken(r, what) {
    const input = h("input", { id: "new-token", type: "text", readonly: true, value: r.token, size: 60, class: "mono", "data-testid": "new-token" });
    document.getElementById("new-token-area").replaceChildren(h("section", { class: "card", "aria-labelledby": "new-token-title" },
      h("h2", { id: "new-token-title" }, `${what} for ${r.app} (token ${r.id})`),
      h("div", { class: "field" }, h("label", { for: "new-token" }, "New token"), input,
        h("p", { class: "hint" }, "Copy it now: it is not shown again. The registry keeps only its SHA-256.")),
      r.replacedId ? h("p", { class: "note" }, `Token ${r.replacedId} stops working ${r.replacedExpiresAt ? "at " + fmtTime(r.replacedExpiresAt) : "now"}.`) : null));
    input.focus();
    input.select();
  }

  // Apps.
  const appsSec = h("section", { "aria-labelledby": "apps-title" }, h("h2", { id: "apps-title" }, "Apps"));
  main.append(appsSec);
  appsSec.append(table("Apps and their permissions", ["app", "description", "produce", "consume", "console", "rate limit", "tokens", ...(admin ? ["actions"] : [])],
    (apps.apps || []).map((a) => {
      const row = [a.name, a.description || "", { v: a.permissions.produce.join(", "), class: "mono" }, { v: a.permissions.consume.join(", "), class: "mono" },
        a.permissions.console ? (a.consoleRole || "viewer") : "—",
        a.rateLimit ? `${a.rateLimit.messagesPerSecond}/s burst ${a.rateLimit.burst || "1 s"}` : "none",
        tokenList(a, admin, ctx, showToken)];
      if (admin) row.push(appActions(a, ctx, reload, showToken));
      return row;
    }), "no app is registered."));
  if (admin) appsSec.append(appForm(ctx, reload));

  // Topics.
  const topicsSec = h("section", { "aria-labelledby": "topics-title" }, h("h2", { id: "topics-title" }, "Topics"));
  main.append(topicsSec);
  topicsSec.append(table("Registered topics", ["topic", "description", "partitions", "dead-letter topic", ...(admin ? ["actions"] : [])],
    (topics.topics || []).map((t) => {
      const row = [{ v: t.name, class: "mono" }, t.description || "", { v: t.partitions, class: "num" }, { v: t.deadLetterTopic || "", class: "mono" }];
      if (admin) row.push(confirmButton("Remove", "Remove topic " + t.name, "delete-topic", async () => {
        await api("/registry/topics/" + t.name.replace(/^[a-z-]+:\/\//, ""), { method: "DELETE" });
        ctx.status(`Removed ${t.name} from the registry.`);
        await reload();
      }, ctx));
      return row;
    }), "no topic is registered."));
  if (admin) topicsSec.append(topicForm(ctx, reload));

  // Subscriptions.
  const subsSec = h("section", { "aria-labelledby": "subs-title" }, h("h2", { id: "subs-title" }, "Subscriptions"));
  main.append(subsSec);
  subsSec.append(table("Registered subscriptions", ["topic", "subscription", "type", "tag filter", "expected consumers", ...(admin ? ["actions"] : [])],
    (subs.subscriptions || []).map((s) => {
      const row = [{ v: s.topic, class: "mono" }, s.name, s.type || "", { v: s.tagFilter || "*", class: "mono" }, (s.expectedConsumers || []).join(", ")];
      if (admin) row.push(confirmButton("Remove", "Remove subscription " + s.name, "delete-subscription", async () => {
        await api("/registry/subscriptions/" + s.topic.replace(/^[a-z-]+:\/\//, "") + "/" + encodeURIComponent(s.name), { method: "DELETE" });
        ctx.status(`Removed subscription ${s.name}.`);
        await reload();
      }, ctx));
      return row;
    }), "no subscription is registered."));
  if (admin) subsSec.append(subscriptionForm(ctx, reload));
}

// tokenList lists an app's tokens by id; admins get Rotate and Revoke.
function tokenList(a, admin, ctx, showToken) {
  const tokens = a.tokens || [];
  if (!tokens.length) return "none";
  return h("ul", { class: "plain" }, tokens.map((t) => {
    const cell = h("li", {}, h("span", { class: "mono" }, t.id), t.expiresAt ? h("span", { class: "note" }, " until " + fmtTime(t.expiresAt)) : null);
    if (!admin) return cell;
    const area = h("span", { class: "actions" });
    const base = "/registry/apps/" + encodeURIComponent(a.name) + "/tokens/" + encodeURIComponent(t.id);
    const reset = () => area.replaceChildren(
      h("button", { type: "button", class: "secondary", dataset: { action: "rotate-token" }, "aria-label": `Rotate token ${t.id} of ${a.name}`, onclick: askRotate }, "Rotate…"),
      confirmButton("Revoke", `Revoke token ${t.id} of ${a.name}`, "revoke-token", async () => {
        await api(base, { method: "DELETE" });
        ctx.status(`Revoked token ${t.id} of ${a.name}.`);
        cell.replaceChildren(h("span", { class: "mono" }, t.id), " ", state("revoked", "bad"));
      }, ctx));
    function askRotate() {
      const grace = h("input", { id: "grace-" + t.id, type: "number", min: 0, max: 604800, value: 0, size: 8, name: "graceSeconds" });
      const go = h("button", { type: "button", class: "danger", dataset: { action: "confirm-rotate" }, onclick: async () => {
        go.disabled = true;
        try {
          const r = await api(base + "/rotate", { method: "POST", body: { graceSeconds: Number(grace.value || 0) } });
          showToken(r, "New token");
          cell.replaceChildren(h("span", { class: "mono" }, t.id), " ", state(r.replacedExpiresAt && new Date(r.replacedExpiresAt) > new Date() ? "rotated, in grace" : "rotated", "warn"));
          ctx.status(`Rotated token ${t.id} of ${a.name}: the new one is ${r.id}.`);
        } catch (err) {
          ctx.error(err);
          go.disabled = false;
        }
      } }, "Confirm rotate");
      area.replaceChildren(h("span", { class: "field" }, h("label", { for: "grace-" + t.id }, "Old token keeps working for (seconds)"), grace),
        go, h("button", { type: "button", class: "secondary", onclick: reset }, "Keep"));
      grace.focus();
    }
    reset();
    cell.append(area);
    return cell;
  }));
}

function appActions(a, ctx, reload, showToken) {
  return h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", dataset: { action: "issue-token" }, "aria-label": "Issue a token for " + a.name, onclick: async () => {
      try {
        const r = await api("/registry/apps/" + encodeURIComponent(a.name) + "/tokens", { method: "POST" });
        await reload();
        showToken(r, "Token issued");
      } catch (err) { ctx.error(err); }
    } }, "Issue token"),
    h("button", { type: "button", class: "secondary", dataset: { action: "edit-app" }, "aria-label": "Edit " + a.name, onclick: () => {
      const f = document.getElementById("app-form");
      f.elements.name.value = a.name;
      f.elements.description.value = a.description || "";
      f.elements.produce.value = a.permissions.produce.join(", ");
      f.elements.consume.value = a.permissions.consume.join(", ");
      f.elements.consoleRole.value = a.permissions.console ? (a.consoleRole || "viewer") : "";
      f.elements.rate.value = a.rateLimit ? a.rateLimit.messagesPerSecond : "";
      f.elements.burst.value = a.rateLimit ? a.rateLimit.burst : "";
      f.elements.name.focus();
    } }, "Edit"),
    confirmButton("Delete", "Delete app " + a.name, "delete-app", async () => {
      await api("/registry/apps/" + encodeURIComponent(a.name), { method: "DELETE" });
      ctx.status(`Deleted ${a.name} and its tokens.`);
      await reload();
    }, ctx));
}

// confirmButton asks once more before an irreversible change.
function confirmButton(label, aria, action, run, ctx) {
  const cell = h("span", { class: "actions" });
  const ask = () => cell.replaceChildren(h("button", { type: "button", class: "secondary", dataset: { action }, "aria-label": aria, onclick: confirm }, label + "…"));
  function confirm() {
    const yes = h("button", { type: "button", class: "danger", dataset: { action: "confirm-" + action }, onclick: async () => {
      yes.disabled = true;
      try { await run(); } catch (err) { ctx.error(err); ask(); }
    } }, "Confirm " + label.toLowerCase());
    cell.replaceChildren(yes, h("button", { type: "button", class: "secondary", onclick: ask }, "Keep"));
    yes.focus();
  }
  ask();
  return cell;
}

function submitter(form, ctx, run) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    ctx.error(null);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try { await run(new FormData(form)); } catch (err) { ctx.error(err); } finally { button.disabled = false; }
  });
  return form;
}

function appForm(ctx, reload) {
  const role = h("select", { id: "app-role", name: "consoleRole" },
    h("option", { value: "" }, "no console"), h("option", { value: "viewer" }, "viewer"),
    h("option", { value: "operator" }, "operator"), h("option", { value: "admin" }, "admin"));
  return submitter(h("form", { id: "app-form", class: "bar", "aria-label": "Create or update an app" },
    field("App name", { name: "name", required: true, pattern: "[A-Za-z0-9_.\\-]{1,64}" }),
    field("Description", { name: "description" }),
    field("Produce patterns", { name: "produce", placeholder: "tenant/ns/*, tenant/*" }, { hint: "comma-separated" }),
    field("Consume patterns", { name: "consume", placeholder: "tenant/ns/topic" }),
    h("div", { class: "field" }, h("label", { for: "app-role" }, "Console role"), role),
    field("Messages per second", { name: "rate", type: "number", min: 0, step: "any" }),
    field("Burst", { name: "burst", type: "number", min: 0 }),
    h("div", { class: "field" }, h("button", { type: "submit", dataset: { action: "save-app" } }, "Save app"))), ctx, async (d) => {
    const body = { description: d.get("description"), produce: list(d.get("produce")), consume: list(d.get("consume")), consoleRole: d.get("consoleRole") };
    const rate = Number(d.get("rate") || 0);
    if (rate > 0) body.rateLimit = { messagesPerSecond: rate, burst: Number(d.get("burst") || 0) };
    await api("/registry/apps/" + encodeURIComponent(d.get("name")), { method: "PUT", body });
    await reload();
    ctx.status(`Saved app ${d.get("name")}.`);
  });
}

function topicForm(ctx, reload) {
  return submitter(h("form", { class: "bar", "aria-label": "Register a topic" },
    field("Topic", { name: "topic", required: true, placeholder: "tenant/ns/topic" }),
    field("Description", { name: "description" }),
    field("Partitions", { name: "partitions", type: "number", min: 0, max: 1024, value: 0 }),
    field("Dead-letter topic", { name: "deadLetterTopic", placeholder: "tenant/ns/topic" }),
    h("div", { class: "field" }, h("label", { for: "create-ns" }, "Create tenant and namespace"),
      h("input", { id: "create-ns", type: "checkbox", name: "createNamespace", value: "yes" })),
    h("div", { class: "field" }, h("button", { type: "submit", dataset: { action: "save-topic" } }, "Save topic"))), ctx, async (d) => {
    const name = String(d.get("topic")).replace(/^[a-z-]+:\/\//, "");
    await api("/registry/topics/" + name, { method: "PUT", body: {
      description: d.get("description"), partitions: Number(d.get("partitions") || 0),
      deadLetterTopic: d.get("deadLetterTopic") || "", createNamespace: d.get("createNamespace") === "yes" } });
    await reload();
    ctx.status(`Saved topic ${name}.`);
  });
}

function subscriptionForm(ctx, reload) {
  const type = h("select", { id: "sub-type", name: "type" }, h("option", { value: "shared" }, "shared"), h("option", { value: "key_shared" }, "key_shared"));
  return submitter(h("form", { class: "bar", "aria-label": "Register a subscription" },
    field("Topic", { name: "topic", required: true, placeholder: "tenant/ns/topic" }),
    field("Subscription", { name: "name", required: true }),
    field("Tag filter", { name: "tagFilter", placeholder: "PAY || REFUND" }, { hint: "empty: every message" }),
    h("div", { class: "field" }, h("label", { for: "sub-type" }, "Type"), type),
    field("Expected consumer apps", { name: "expectedConsumers", placeholder: "billing-worker" }),
    h("div", { class: "field" }, h("button", { type: "submit", dataset: { action: "save-subscription" } }, "Save subscription"))), ctx, async (d) => {
    const topic = String(d.get("topic")).replace(/^[a-z-]+:\/\//, "");
    await api("/registry/subscriptions/" + topic + "/" + encodeURIComponent(d.get("name")), { method: "PUT", body: {
      tagFilter: d.get("tagFilter"), type: d.get("type"), expectedConsumers: list(d.get("expectedConsumers")) } });
    await reload();
    ctx.status(`Saved subscription ${d.get("name")}.`);
  });
}

// The audit log, newest first, filtered by kind and object, a page at a
// time (operators and admins).
export async function auditPage(main, { query, ctx }) {
  const kind = query.get("kind") || "";
  const object = query.get("object") || "";
  const cursor = query.get("cursor") || "";
  const kindSel = h("select", { id: "audit-kind", name: "kind" }, ["", "app", "topic", "subscription", "registry"].map((k) =>
    h("option", { value: k, selected: k === kind }, k || "any")));
  const form = h("form", { class: "bar", "aria-label": "Filter the audit log", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v) p.set(k, v);
    ctx.go("#/audit?" + p.toString());
  } },
  h("div", { class: "field" }, h("label", { for: "audit-kind" }, "Kind"), kindSel),
  field("Object", { name: "object", value: object, placeholder: "app name, tenant/ns/topic" }),
  h("div", { class: "field" }, h("button", { type: "submit" }, "Show")));
  main.append(h("h1", {}, "Audit log"), form);
  const ans = await api("/audit", { query: { kind, object, cursor, limit: 50 } });
  main.append(table("Registry changes, newest first", ["#", "when", "who", "role", "action", "object", "token", "before → after"],
    ans.entries.map((e) => [{ v: e.id, class: "num" }, fmtTime(e.time), e.actor || "(open console)", e.role || "", e.action, { v: e.object, class: "mono" },
      { v: [e.tokenId, e.replacedTokenId ? "replaces " + e.replacedTokenId : ""].filter(Boolean).join(" "), class: "mono" },
      h("details", {}, h("summary", {}, "show"),
        h("pre", { class: "payload" }, "before: " + JSON.stringify(e.before ?? null, null, 1) + "\nafter: " + JSON.stringify(e.after ?? null, null, 1)))]),
    "no change is recorded."));
  if (ans.next) {
    const p = new URLSearchParams({ kind, object, cursor: ans.next });
    for (const [k, v] of [...p.entries()]) if (!v) p.delete(k);
    main.append(h("p", {}, h("a", { href: "#/audit?" + p.toString(), "data-testid": "audit-older" }, "Older entries")));
  }
}
