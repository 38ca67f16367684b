// Delayed messages: the scheduled messages of a topic (or the earliest of
// all), by due time.
import { api } from "./api.js";
import { h, field, table, fmtTime, state } from "./dom.js";
import { rescheduleCell } from "./ops.js";

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
  const operator = ctx.can("operator");
  const rows = (ans.data || []).map((d) => {
    const row = [
      { v: h("a", { href: "#/message/" + encodeURIComponent(d.uid) }, d.uid), class: "mono" }, { v: d.topic, class: "mono" }, d.key || "",
      (d.tags || []).join(", "), fmtTime(d.due), d.mode + (d.level ? " " + d.level : ""), d.inFlight ? state("firing", "warn") : "",
    ];
    if (operator) row.push(d.inFlight ? "" : h("div", {}, cancelCell(d, ctx), d.mode === "wheel" ? rescheduleCell(d, ctx) : null));
    return row;
  });
  const headers = ["uid", "topic", "business key", "tags", "due", "mode", "state"];
  if (operator) headers.push("action");
  list.append(table("Scheduled messages, earliest first", headers, rows, "nothing is scheduled."));
}

// cancelCell asks once more before cancelling: Cancel, then Confirm or Keep.
function cancelCell(d, ctx) {
  const cell = h("div", { class: "actions" });
  const ask = () => cell.replaceChildren(
    h("button", { type: "button", class: "secondary", dataset: { action: "cancel-delayed" }, "aria-label": "Cancel delayed message " + d.uid, onclick: confirm }, "Cancel…"));
  async function confirm() {
    const yes = h("button", { type: "button", class: "danger", dataset: { action: "confirm-cancel" }, onclick: async () => {
      yes.disabled = true;
      try {
        const r = await api("/delayed/" + encodeURIComponent(d.uid), { method: "DELETE" });
        cell.replaceChildren(state(r.cancelled ? "cancelled" : "firing: may still be delivered", r.cancelled ? "good" : "warn"));
        ctx.status(r.cancelled ? `Cancelled ${d.uid}.` : `${d.uid} is being delivered; it may still arrive.`);
      } catch (err) {
        ctx.error(err);
        ask();
      }
    } }, "Confirm cancel");
    cell.replaceChildren(yes, h("button", { type: "button", class: "secondary", onclick: ask }, "Keep"));
    yes.focus();
  }
  ask();
  return cell;
}
