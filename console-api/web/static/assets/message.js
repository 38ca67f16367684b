// The message: what it is, its content (the payload hidden until asked
// for), properties, consumption per subscription and the timeline.
import { api } from "./api.js";
import { h, table, kv, fmtTime, state } from "./dom.js";

const CONSUMED = { consumed: "good", dead_lettered: "bad", delivered_not_acked: "warn", filtered: "", not_yet: "warn" };

export async function messagePage(main, { args }) {
  const uid = args[0] || "";
  main.append(h("p", {}, h("a", { href: "#/search" }, "← Find a message")), h("h1", {}, "Message ", h("span", { class: "mono" }, uid)));
  const [m, cons] = await Promise.all([
    api("/messages/" + encodeURIComponent(uid)),
    api("/messages/" + encodeURIComponent(uid) + "/consumption"),
  ]);
  main.append(
    h("section", { "aria-labelledby": "summary-title" }, h("h2", { id: "summary-title" }, "Summary"), kv([
      ["Topic", h("span", { class: "mono" }, m.topic)], ["Business key", m.key], ["Tags", (m.tags || []).join(", ")],
      ["Producing app", m.app], ["Client IP", m.clientIp], ["Message id", h("span", { class: "mono" }, m.messageId || "—")],
      ["Cluster", m.cluster], ["Status", m.status], ["Accepted", fmtTime(m.acceptedAt)], ["Persisted", fmtTime(m.persistedAt)],
    ])),
    contentSection(m),
    h("section", { "aria-labelledby": "consumption-title" }, h("h2", { id: "consumption-title" }, "Consumption"),
      table("Consumption per subscription", ["subscription", "state", "consumer", "app", "client IP", "at", "attempt", "decided by", "note"],
        cons.subscriptions.map((s) => [s.subscription, state(s.state.replaceAll("_", " "), CONSUMED[s.state]), s.consumer || "", s.app || "",
          s.clientIp || "", fmtTime(s.time), s.attempt || "", s.source, s.note || ""]), "no subscription is registered for this topic."),
      (cons.notes || []).map((n) => h("p", { class: "note" }, n))),
    h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"),
      table("Lifecycle events, oldest first", ["at", "event", "node", "app", "subscription", "consumer", "cluster", "message id", "latency ms", "error"],
        m.timeline.map((e) => [fmtTime(e.time), e.type, e.node || "", e.app || "", e.subscription || "", e.consumer || "", e.cluster || "",
          { v: e.messageId || "", class: "mono" }, e.latencyMs ? e.latencyMs.toFixed(1) : "", e.error || ""])),
      m.timelineNext ? h("p", { class: "note" }, "The timeline goes on: GET /console/v1/messages/" + uid + "/timeline?cursor=" + m.timelineNext) : null),
  );
}

function contentSection(m) {
  const c = m.content;
  const sec = h("section", { "aria-labelledby": "content-title" }, h("h2", { id: "content-title" }, "Content"));
  if (!c) {
    sec.append(h("p", { class: "note" }, m.contentNote || "The broker content is not available."));
    return sec;
  }
  const pre = h("pre", { class: "payload", id: "payload", hidden: true, "aria-label": "Payload" }, c.payload);
  const toggle = h("input", { type: "checkbox", id: "show-payload", "aria-controls": "payload",
    onchange: () => { pre.hidden = !toggle.checked; } });
  sec.append(
    kv([["Size", c.size + " bytes" + (c.truncated ? " (cut: only the start is shown)" : "")], ["Encoding", c.encoding],
      ["Publish time", fmtTime(c.publishTime)], ["Event time", fmtTime(c.eventTime)], ["Producer", c.producerName]]),
    h("p", {}, toggle, " ", h("label", { for: "show-payload" }, "Show payload")),
    pre,
    h("h3", {}, "Properties"),
    table("Message properties", ["name", "value"],
      Object.keys(c.properties || {}).sort().map((k) => [{ v: k, class: "mono" }, { v: c.properties[k], class: "mono" }])));
  if (m.contentNote) sec.append(h("p", { class: "note" }, m.contentNote));
  return sec;
}
