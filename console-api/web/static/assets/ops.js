// Operations of issue 15 the other pages embed: reset a subscription's
// cursor (Topics), reschedule a delayed message (Delayed), and the alert
// rules that fire now (Health). Write controls are built only for
// operators; the API checks the role again.
import { api } from "./api.js";
import { h, table, fmtTime, state } from "./dom.js";

let seq = 0;

// utcInput is a labelled text field for an RFC 3339 UTC time.
function utcInput(labelText, value, action) {
  const id = "op-time-" + ++seq;
  const input = h("input", { id, name: "time", value, size: 24, class: "mono", spellcheck: "false",
    dataset: { input: action }, "aria-describedby": id + "-hint" });
  return { input, el: h("div", { class: "field" }, h("label", { for: id }, labelText), input,
    h("p", { class: "hint", id: id + "-hint" }, "UTC, RFC 3339: 2026-01-02T15:04:05Z")) };
}

function isoSeconds(d) { return d.toISOString().replace(/\.\d{3}Z$/, "Z"); }

// resetCursorForm replays one subscription from a time: Reset cursor…,
// then the time and Confirm reset (or Keep).
export function resetCursorForm(topic, sub, ctx) {
  const box = h("div", { class: "actions" });
  const ask = () => box.replaceChildren(h("button", { type: "button", class: "secondary", dataset: { action: "reset-cursor", subscription: sub },
    "aria-label": `Reset the cursor of ${sub} to a time`, onclick: open }, "Reset cursor…"));
  function open() {
    const t = utcInput(`Replay ${sub} from`, isoSeconds(new Date(Date.now() - 3600e3)), "reset-time");
    const form = h("form", { class: "bar", "aria-label": `Reset the cursor of ${sub}`, onsubmit: async (e) => {
      e.preventDefault();
      go.disabled = true;
      try {
        const r = await api("/subscriptions/reset-cursor", { method: "POST", query: { topic, subscription: sub }, body: { time: t.input.value.trim() } });
        box.replaceChildren(state(`reset to ${fmtTime(r.resetTo)}`, "good"));
        ctx.status(`${sub} replays from ${fmtTime(r.resetTo)}: messages since then are delivered again.`);
      } catch (err) {
        ctx.error(err);
        go.disabled = false;
      }
    } },
    t.el,
    h("p", { class: "hint" }, "Every message published since this time is delivered again to the subscription's consumers, even those already acknowledged; deliveries in flight end."));
    const go = h("button", { type: "submit", class: "danger", dataset: { action: "confirm-reset" } }, "Confirm reset");
    form.append(h("div", { class: "field" }, go), h("div", { class: "field" }, h("button", { type: "button", class: "secondary", onclick: ask }, "Keep")));
    box.replaceChildren(form);
    t.input.focus();
  }
  ask();
  return box;
}

// rescheduleCell moves a wheel message: Reschedule…, then the new time
// and Confirm reschedule (or Keep). onDone gets the message as scheduled.
export function rescheduleCell(d, ctx, onDone) {
  const cell = h("div", { class: "actions" });
  const ask = () => cell.replaceChildren(h("button", { type: "button", class: "secondary", dataset: { action: "reschedule-delayed" },
    "aria-label": "Reschedule delayed message " + d.uid, onclick: open }, "Reschedule…"));
  function open() {
    const t = utcInput("New due time", isoSeconds(new Date(d.due)), "reschedule-time");
    const go = h("button", { type: "submit", dataset: { action: "confirm-reschedule" } }, "Confirm reschedule");
    const form = h("form", { "aria-label": "Reschedule " + d.uid, onsubmit: async (e) => {
      e.preventDefault();
      go.disabled = true;
      try {
        const r = await api("/delayed/" + encodeURIComponent(d.uid) + "/reschedule", { method: "POST", body: { deliverAt: t.input.value.trim() } });
        cell.replaceChildren(state("due " + fmtTime(r.due), "good"));
        ctx.status(`${d.uid} is now due ${fmtTime(r.due)}.`);
        if (onDone) onDone(r);
      } catch (err) {
        ctx.error(err);
        go.disabled = false;
      }
    } }, t.el, h("div", { class: "actions" }, go, h("button", { type: "button", class: "secondary", onclick: ask }, "Keep")));
    cell.replaceChildren(form);
    t.input.focus();
  }
  ask();
  return cell;
}

// alertsCard shows which alert rules fire now (GET /alerts), or how to
// connect a Prometheus.
export async function alertsCard() {
  const ans = await api("/alerts").catch((e) => ({ data: null, note: e.message }));
  const sec = h("section", { class: "card alerts", "aria-labelledby": "h-alerts" }, h("h2", { id: "h-alerts" }, "Alerts firing now"));
  if (ans.note) sec.append(h("p", { class: "note" }, ans.note));
  if (ans.source) sec.append(h("p", { class: "note" }, "From " + ans.source + " (docs/alerts/pulsar-sidecar.rules.yml)."));
  if (ans.data) {
    sec.append(table("Firing and pending alerts", ["alert", "state", "severity", "summary", "since"],
      ans.data.map((a) => [a.name, state(a.state, a.state === "firing" ? "bad" : "warn"), a.severity || "", a.summary || "", fmtTime(a.activeAt)]),
      "no alert rule fires."));
  }
  return sec;
}
