// Topics and subscriptions: backlog, rates and consumers from the broker,
// and the backlog per tag from the consume engine.
import { api } from "./api.js";
import { h, table, fmtTime } from "./dom.js";
import { resetCursorForm } from "./ops.js";

export async function topicsPage(main, { ctx }) {
  main.append(h("h1", {}, "Topics and subscriptions"));
  const [topics, subs, backlog] = await Promise.all([
    api("/registry/topics"), api("/registry/subscriptions"), api("/stats/backlog"),
  ]);
  if (backlog.note) main.append(h("p", { class: "note" }, backlog.note));
  const names = (topics.topics || []).map((t) => t.name);
  if (!names.length) { main.append(h("p", { class: "empty" }, "No topic has a registered subscription yet.")); return; }
  const stats = new Map((backlog.data || []).map((b) => [b.topic, b]));
  for (const name of names) {
    const st = stats.get(name);
    const regs = (subs.subscriptions || []).filter((s) => s.topic === name);
    const tags = await api("/stats/tag-backlog", { query: { topic: name } }).catch((e) => ({ data: null, note: e.message }));
    const slug = "t-" + names.indexOf(name);
    main.append(h("section", { "aria-labelledby": slug },
      h("h2", { id: slug, class: "mono" }, name),
      st ? h("p", { class: "note" }, `in ${rate(st.msgRateIn)}/s, out ${rate(st.msgRateOut)}/s, ${st.storageSize ?? 0} bytes stored`,
        st.error ? " — " + st.error : "", st.missingSubscriptions?.length ? " — not on the broker: " + st.missingSubscriptions.join(", ") : "") : null,
      table("Subscriptions of " + name, ["subscription", "type", "tag filter", "expected consumers", "backlog", "unacked", "out /s", "oldest backlog", "consumers"],
        regs.map((s) => {
          const b = (st?.subscriptions || []).find((x) => x.name === s.name);
          return [s.name, s.type || "", { v: s.tagFilter || "*", class: "mono" }, (s.expectedConsumers || []).join(", "),
            { v: b ? b.msgBacklog : "—", class: "num" }, { v: b ? b.unackedMessages : "—", class: "num" },
            { v: b ? rate(b.msgRateOut) : "—", class: "num" }, fmtTime(b?.oldestBacklogPublishTime),
            (b?.consumers || []).map((c) => c.name).join(", ")];
        })),
      ctx.can("operator") && regs.length ? h("div", { class: "resets" }, h("h3", {}, "Replay a subscription"),
        regs.map((s) => h("div", { class: "reset-row" }, h("span", { class: "mono" }, s.name), resetCursorForm(name, s.name, ctx)))) : null,
      h("h3", {}, "Backlog per tag"),
      tags.note ? h("p", { class: "note" }, tags.note) : null,
      tags.data ? table("Backlog per tag on " + name, ["subscription", "tag", "messages", "ready", "in flight", "oldest", "exact"],
        tags.data.map((t) => [t.subscription, { v: t.tag, class: "mono" }, { v: t.messages, class: "num" }, { v: t.ready, class: "num" },
          { v: t.inFlight, class: "num" }, fmtTime(t.oldestPublishTime), t.exact ? "yes" : `no (${t.scannedMessages} scanned)`]), "no backlog.") : null));
  }
}

function rate(x) { return (x || 0).toFixed(1); }
