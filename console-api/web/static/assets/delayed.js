// Delayed messages: the scheduled messages of a topic (or the earliest of
// all), by due time.
import { api } from "./api.js";
import { h, field, table, fmtTime, state } from "./dom.js";

export async function delayedPage(main, { query, ctx }) {
  const topic = query.get("topic") || "";
  const key = query.get("key") || "";
  const form = h("form", { class: "bar", "aria-label": "Filter delayed messages", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v) p.set(k, v);
    ctx.go("#/delayed?" + p.toString());
  } },
  field("Topic", { name: "topic", value: topic, placeholder: "tenant/ns/topic" }),
  field("Business key", { name: "key", value: key }),
  h("div", { class: "field" }, h("button", { type: "submit" }, "Show")));
  main.append(h("h1", {}, "Delayed messages"), form);
  const list = h("section", { "aria-label": "Scheduled messages" });
  main.append(list);
  const ans = await api("/delayed", { query: { topic, key } });
  if (ans.note) list.append(h("p", { class: "note" }, ans.note));
  const rows = (ans.data || []).map((d) => [
    { v: h("a", { href: "#/message/" + encodeURIComponent(d.uid) }, d.uid), class: "mono" }, { v: d.topic, class: "mono" }, d.key || "",
    (d.tags || []).join(", "), fmtTime(d.due), d.mode + (d.level ? " " + d.level : ""), d.inFlight ? state("firing", "warn") : "",
  ]);
  list.append(table("Scheduled messages, earliest first", ["uid", "topic", "business key", "tags", "due", "mode", ""], rows, "nothing is scheduled."));
}
