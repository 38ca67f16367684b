// Health: the clusters' circuit breakers, the spool, how late delayed
// messages fire, and how far the trace store is behind.
import { api } from "./api.js";
import { h, table, kv, fmtTime, state } from "./dom.js";
import { alertsCard } from "./ops.js";

export async function healthPage(main) {
  main.append(h("h1", {}, "Health"));
  const [clusters, spool, delay, trace] = await Promise.all(
    ["/stats/clusters", "/stats/spool", "/stats/delay", "/stats/trace"].map((p) => api(p).catch((e) => ({ data: null, note: e.message }))));
  const card = (id, title, ans, body) => h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title),
    ans.note ? h("p", { class: "note" }, ans.note) : null, ans.data ? body(ans.data) : null);
  const alerts = alertsCard();
  main.append(h("div", { class: "cards" },
    card("h-clusters", "Clusters", clusters, (d) => table("Pulsar clusters", ["cluster", "role", "state"],
      d.map((c) => [c.name, c.role, state((c.healthy ? "healthy" : "unhealthy") + (c.breaker ? ", breaker " + c.breaker : ""), c.healthy ? "good" : "bad")]))),
    card("h-spool", "Spool", spool, (d) => kv([["Messages", d.messages], ["Bytes", d.bytes], ["Oldest", fmtTime(d.oldest)],
      ["Replaying", d.replaying ? "yes" : "no"]])),
    card("h-delay", "Delayed delivery", delay, (d) => kv([["Pending", d.pending], ["Next due", fmtTime(d.nextDueAt)],
      ["Delay lag", delayLag(d)],
      ["By level", Object.entries(d.byLevel || {}).map(([k, v]) => `${k}: ${v}`).join(", ")]])),
    card("h-trace", "Trace", trace, (d) => kv([["Trace lag", d.lagSeconds.toFixed(3) + " s"], ["Queued", d.queued],
      ["Waiting on disk", d.outboxBytes + " bytes"], ["Recorded", d.recorded], ["Written", d.written], ["Dropped", d.dropped],
      ["Store", d.storeDegraded ? state("behind", "warn") : state("keeping up", "good")]])),
  ));
  main.append(await alerts);
}

// delayLag is how far behind the earliest scheduled message is: overdue
// by how much, or on time; and how late the last one fired when known.
function delayLag(d) {
  const parts = [];
  if (d.nextDueAt) {
    const over = (Date.now() - new Date(d.nextDueAt)) / 1000;
    parts.push(over > 1 ? `${over.toFixed(1)} s overdue` : "on time");
  } else {
    parts.push("nothing due");
  }
  if (d.latenessSeconds != null) parts.push(`last fired ${d.latenessSeconds.toFixed(3)} s late`);
  return parts.join("; ");
}
