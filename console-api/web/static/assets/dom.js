// Small DOM helpers. Text always goes in as text (never as HTML), so
// nothing a message carries can run in the page.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

let fieldSeq = 0;

// field is a labelled input: label and control tied by id.
export function field(labelText, attrs, { grow = false, hint } = {}) {
  const id = attrs.id || "f" + ++fieldSeq;
  const hintId = hint ? id + "-hint" : undefined;
  const input = h(attrs.tag || "input", { ...attrs, tag: undefined, id, "aria-describedby": hintId });
  return h("div", { class: grow ? "field grow" : "field" },
    h("label", { for: id }, labelText), input, hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}

// table builds a captioned table; rows are arrays of cells (a cell is text,
// a Node, or {v, class}).
export function table(caption, headers, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("div", { class: "table-wrap" }, h("p", { class: "empty" }, caption + ": " + empty));
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) =>
        c && typeof c === "object" && !(c instanceof Node) ? h("td", { class: c.class }, c.v) : h("td", {}, c)))))));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter((p) => p).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === undefined || v === null || v === "" ? "—" : v)]));
}

export function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d)) return String(s);
  return d.toISOString().replace("T", " ").replace("Z", " UTC");
}

export function state(text, kind) {
  return h("span", { class: "state " + (kind || "") }, text);
}
