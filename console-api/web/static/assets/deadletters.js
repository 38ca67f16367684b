// Dead letters: each registered subscription's dead-letter topic, its
// messages with their reasons, and (operators) resend to the original
// topic with the same uid.
import { api } from "./api.js";
import { h, table, fmtTime, state } from "./dom.js";

export async function deadLettersPage(main, { query, ctx }) {
  const topic = query.get("topic") || "";
  const sub = query.get("subscription") || "";
  main.append(h("h1", {}, "Dead letters"));
  const topics = await api("/dead-letters");
  const rows = (topics.data || []).map((d) => [
    { v: d.topic, class: "mono" }, d.subscription, { v: d.deadLetterTopic, class: "mono" }, { v: d.maxDeliveries, class: "num" },
    h("a", { href: "#/dead-letters?" + new URLSearchParams({ topic: d.topic, subscription: d.subscription }).toString() },
      "Show dead letters", h("span", { class: "sr-only" }, ` of ${d.subscription} on ${d.topic}`)),
  ]);
  main.append(table("Dead-letter topic per subscription", ["topic", "subscription", "dead-letter topic", "max deliveries", ""], rows,
    "no subscription is registered."));
  if (!topic || !sub) return;

  const section = h("section", { "aria-labelledby": "dl-title" }, h("h2", { id: "dl-title" }, `Dead letters of ${sub}`));
  main.append(section);
  const ans = await api("/dead-letters/messages", { query: { topic, subscription: sub } });
  const operator = ctx.can("operator");
  const boxes = [];
  const msgRows = ans.data.map((d) => {
    const row = [
      { v: h("a", { href: "#/message/" + encodeURIComponent(d.uid) }, d.uid), class: "mono" }, d.key || "", (d.tags || []).join(", "),
      d.reason, { v: d.deliveries, class: "num" }, fmtTime(d.publishTime), { v: d.messageId, class: "mono" },
    ];
    if (operator) {
      const box = h("input", { type: "checkbox", value: d.messageId, "aria-label": "Select dead letter " + d.uid });
      boxes.push(box);
      row.unshift(box);
    }
    return row;
  });
  const headers = ["uid", "business key", "tags", "reason", "deliveries", "dead-lettered", "id in dead-letter topic"];
  if (operator) headers.unshift("select");
  section.append(table("Dead letters, oldest first", headers, msgRows, "none."));
  if (ans.more) section.append(h("p", { class: "note" }, "More dead letters follow; only the first 100 are shown."));
  if (!operator || !ans.data.length) return;
  const out = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "button", dataset: { action: "resend" }, onclick: async () => {
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!ids.length) { ctx.status("Select the dead letters to resend first."); return; }
    button.disabled = true;
    try {
      const r = await api("/dead-letters/resend", { method: "POST", query: { topic, subscription: sub }, body: { messageIds: ids } });
      out.replaceChildren(table("Resend results", ["dead letter", "uid", "result", "new message id", "error"],
        r.results.map((x) => [{ v: x.messageId, class: "mono" }, { v: x.uid || "", class: "mono" },
          state(x.status.replace("_", " "), x.status === "resent" ? "good" : "bad"), { v: x.newMessageId || "", class: "mono" }, x.error || ""])));
      const n = r.results.filter((x) => x.status === "resent").length;
      ctx.status(`Resent ${n} of ${ids.length} to ${topic}.`);
    } catch (err) {
      ctx.error(err);
    } finally {
      button.disabled = false;
    }
  } }, "Resend selected to the original topic");
  section.append(h("div", { class: "actions" }, button), out);
}
