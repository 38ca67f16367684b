// Find a message: one box that takes a uid, a broker message id, a
// business key, a tag or an app (or "key:", "tag:", "app:", "topic:" to
// say which), with time range and topic filters.
import { api } from "./api.js";
import { h, field, table, fmtTime } from "./dom.js";

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MESSAGE_ID = /^\d+:\d+(:-?\d+){0,2}$/;
const PREFIXES = ["key", "tag", "app", "topic", "uid", "messageId"];

// classify says what the box holds: {kind: "uid"|"messageId"|"fields", ...}.
export function classify(text) {
  const q = text.trim();
  if (UID.test(q.toLowerCase())) return { kind: "uid", value: q.toLowerCase() };
  if (MESSAGE_ID.test(q)) return { kind: "messageId", value: q };
  const m = /^([A-Za-z]+):(.+)$/.exec(q);
  if (m && PREFIXES.includes(m[1]) && !q.includes("://")) return { kind: "fields", fields: [m[1]], value: m[2].trim() };
  if (q === "") return { kind: "fields", fields: [], value: "" };
  return { kind: "fields", fields: ["key", "tag", "app"], value: q };
}

// toAPITime turns a datetime-local value (taken as UTC) into RFC 3339.
function toAPITime(v) { return v ? new Date(v + "Z").toISOString() : undefined; }

export async function searchPage(main, { query, ctx }) {
  const q = query.get("q") || "";
  const form = h("form", { class: "bar", role: "search", "aria-label": "Find a message", onsubmit: (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const p = new URLSearchParams();
    for (const [k, v] of fd.entries()) if (v) p.set(k, v);
    const next = "#/search?" + p.toString();
    if (location.hash === next) run(); else ctx.go(next);
  } },
  field("Find a message", { name: "q", type: "search", value: q, placeholder: "uid, message id, business key, tag or app", autocomplete: "off" },
    { grow: true, hint: "A uid or a message id (ledger:entry) opens the message; other text is looked up as business key, tag and app. Prefix key:, tag:, app: or topic: to pick one." }),
  field("Topic", { name: "topic", value: query.get("topic") || "", placeholder: "tenant/ns/topic" }),
  field("From (UTC)", { name: "from", type: "datetime-local", step: "1", value: query.get("from") || "" }),
  field("To (UTC)", { name: "to", type: "datetime-local", step: "1", value: query.get("to") || "" }),
  h("div", { class: "field" }, h("button", { type: "submit" }, "Search")));
  const results = h("section", { "aria-labelledby": "results-title", "aria-live": "polite" });
  main.append(h("h1", {}, "Find a message"), form, results);
  if (!query.toString()) { form.querySelector("input").focus(); return; }
  await run();

  async function run() {
    results.replaceChildren(h("h2", { id: "results-title" }, "Results"), h("p", { class: "note" }, "Searching…"));
    const what = classify(q);
    const topic = query.get("topic") || undefined;
    if (what.kind === "uid") { ctx.go("#/message/" + encodeURIComponent(what.value)); return; }
    if (what.kind === "messageId") {
      const m = await api("/message-ids/" + encodeURIComponent(what.value), { query: { topic, content: "false" } });
      ctx.go("#/message/" + encodeURIComponent(m.uid));
      return;
    }
    const base = { topic, from: toAPITime(query.get("from")), to: toAPITime(query.get("to")), limit: 100 };
    const asks = what.fields.length ? what.fields.map((f) => ({ field: f, query: { ...base, [f]: what.value } })) : [{ field: "time", query: base }];
    const answers = await Promise.all(asks.map(async (a) => {
      if (a.field === "topic") a.query.topic = what.value;
      return { field: a.field, ans: await api("/search", { query: a.query }) };
    }));
    const byUID = new Map();
    for (const { field: f, ans } of answers) {
      for (const ev of ans.events) {
        let m = byUID.get(ev.uid);
        if (!m) { m = { uid: ev.uid, events: [], matched: new Set() }; byUID.set(ev.uid, m); }
        m.events.push(ev);
        m.matched.add(f);
      }
    }
    const rows = [...byUID.values()].map((m) => {
      m.events.sort((a, b) => a.time.localeCompare(b.time));
      const first = m.events.find((e) => e.topic) || m.events[0];
      const last = m.events[m.events.length - 1];
      return [
        { v: h("a", { href: "#/message/" + encodeURIComponent(m.uid) }, m.uid), class: "mono" },
        { v: first.topic || "", class: "mono" }, m.events.find((e) => e.key)?.key || "",
        (m.events.find((e) => e.tags)?.tags || []).join(", "), m.events.find((e) => e.app)?.app || "",
        last.type, fmtTime(last.time), [...m.matched].join(", "),
      ];
    });
    const more = answers.some((a) => a.ans.next);
    results.replaceChildren(h("h2", { id: "results-title" }, `Results (${rows.length} message${rows.length === 1 ? "" : "s"})`),
      table("Messages found", ["uid", "topic", "business key", "tags", "app", "latest event", "at", "matched by"], rows, "no trace event matches."));
    if (more) results.append(h("p", { class: "note" }, "More events match: narrow the time range or the topic."));
  }
}
