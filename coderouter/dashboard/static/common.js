// What both pages share: the key (sessionStorage, sent as Bearer), the JSON calls, the
// refresh loop, the theme, formatting, and a tiny element builder.
"use strict";

const REFRESH_MS = 5000;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const fmt = {
  int: (v) => (v == null ? "–" : Math.round(v).toLocaleString("en-US")),
  short(v) {
    if (v == null) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
    return String(Math.round(v * 100) / 100);
  },
  // Dollars with the same digits in every row: cents from $100, else 4 decimals.
  cost(v, axis) {
    if (v == null) return "–";
    if (v === 0) return "$0";
    if (axis) return "$" + Number(v.toPrecision(3));
    if (Math.abs(v) < 0.00005) return v > 0 ? "<$0.0001" : "-<$0.0001";
    return "$" + v.toFixed(Math.abs(v) >= 100 ? 2 : 4);
  },
  // The browser's offset from UTC, which every time on the page is shown in.
  zone() {
    const minutes = -new Date().getTimezoneOffset();
    if (minutes === 0) return "UTC";
    const pad = (n) => String(Math.floor(n)).padStart(2, "0");
    const a = Math.abs(minutes);
    return `UTC${minutes > 0 ? "+" : "-"}${pad(a / 60)}:${pad(a % 60)}`;
  },
  ms(v, axis) {
    if (v == null) return "–";
    if (axis && v >= 1000) return Number((v / 1000).toPrecision(3)) + " s";
    return v >= 10000 ? (v / 1000).toFixed(1) + " s" : v >= 1000 ? (v / 1000).toFixed(2) + " s"
      : Math.round(v) + " ms";
  },
  pct: (v) => (v == null ? "–" : (v * 100).toFixed(v < 0.1 && v > 0 ? 2 : 1) + "%"),
  time(ts, long) {
    if (ts == null) return "–";
    const d = new Date(ts * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return long ? `${day} ${hm}:${pad(d.getSeconds())}` : hm;
  },
  day(ts) {
    const d = new Date(ts * 1000);
    return d.toLocaleDateString("en-US", {month: "short", day: "numeric"});
  },
};

// The page's key lives in this tab's sessionStorage only; never in the DOM or a URL.
class Session {
  constructor(storageKey) { this.storageKey = storageKey; }
  get key() { return sessionStorage.getItem(this.storageKey); }
  set key(value) {
    if (value) sessionStorage.setItem(this.storageKey, value);
    else sessionStorage.removeItem(this.storageKey);
  }
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function callApi(session, path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value != null && value !== "") query.set(name, value);
  }
  const url = query.toString() ? `${path}?${query}` : path;
  let resp;
  try {
    resp = await fetch(url, {headers: {Authorization: `Bearer ${session.key}`},
                             cache: "no-store", credentials: "omit"});
  } catch (err) {
    throw new ApiError(0, "the gateway did not answer; is it running?");
  }
  let body = null;
  try { body = await resp.json(); } catch (err) { body = null; }
  if (!resp.ok) {
    const message = body && body.error && body.error.message || `HTTP ${resp.status}`;
    throw new ApiError(resp.status, message);
  }
  return body;
}

// Shows the login form until a key works; then calls refresh() every few seconds while the
// tab is visible. A 401 at any time forgets the key and shows the form with the reason.
class Page {
  constructor({storageKey, refresh, probe}) {
    this.session = new Session(storageKey);
    this.refresh = refresh;
    this.probe = probe;
    this.timer = null;
    this.busy = false;
    this.form = document.getElementById("login");
    this.message = document.getElementById("login-message");
    this.main = document.getElementById("main");
    this.status = document.getElementById("status");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.login(); });
    document.getElementById("logout").addEventListener("click", () => this.logout(""));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.session.key) this.tick();
    });
    setupTheme();
    if (this.session.key) this.start(); else this.showLogin("");
  }

  api(path, params) { return callApi(this.session, path, params); }

  async login() {
    const input = this.form.elements.key;
    const key = input.value.trim();
    input.value = "";
    if (!key) { this.showLogin("Enter a key."); return; }
    this.session.key = key;
    try {
      await this.probe();
    } catch (err) {
      this.logout(err.status === 401 || err.status === 403
        ? `That key was refused: ${err.message}` : `Cannot sign in: ${err.message}`);
      return;
    }
    this.start();
  }

  logout(reason) {
    this.session.key = null;
    clearInterval(this.timer);
    this.timer = null;
    this.showLogin(reason);
  }

  showLogin(reason) {
    document.body.classList.remove("signed-in");
    this.main.hidden = true;
    this.form.hidden = false;
    this.message.textContent = reason;
    this.message.hidden = !reason;
    this.form.elements.key.focus();
  }

  start() {
    document.body.classList.add("signed-in");
    this.form.hidden = true;
    this.main.hidden = false;
    this.tick();
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.tick();
    }, REFRESH_MS);
  }

  async tick() {
    if (this.busy || !this.session.key) return;
    this.busy = true;
    try {
      await this.refresh();
      this.status.textContent = `Updated ${fmt.time(Date.now() / 1000, true)}`;
      this.status.classList.remove("bad");
    } catch (err) {
      if (err.status === 401) this.logout(`Signed out: ${err.message}`);
      else { this.status.textContent = `Update failed: ${err.message}`;
             this.status.classList.add("bad"); }
    } finally {
      this.busy = false;
    }
  }
}

function setupTheme() {
  const button = document.getElementById("theme");
  const order = ["auto", "light", "dark"];
  const apply = (theme) => {
    document.documentElement.dataset.theme = theme;
    button.textContent = {auto: "◐ Auto", light: "☀ Light", dark: "☾ Dark"}[theme];
  };
  apply(localStorage.getItem("coderouter.theme") || "auto");
  button.addEventListener("click", () => {
    const next = order[(order.indexOf(document.documentElement.dataset.theme) + 1) % 3];
    localStorage.setItem("coderouter.theme", next);
    apply(next);
  });
}

// The range picker: preset buttons plus a custom from/to; calls onChange with query params.
function rangePicker(onChange) {
  const select = document.getElementById("range");
  const custom = document.getElementById("custom-range");
  const since = document.getElementById("since");
  const until = document.getElementById("until");
  const params = () => {
    if (select.value !== "custom") return {range: select.value};
    const iso = (input) => input.value ? new Date(input.value).toISOString() : "";
    return since.value ? {since: iso(since), until: iso(until)} : {range: "24h"};
  };
  select.addEventListener("change", () => {
    custom.hidden = select.value !== "custom";
    onChange();
  });
  for (const input of [since, until]) input.addEventListener("change", onChange);
  return params;
}

// Totals as cards: [{id, label, value, text, sub}]
function renderCards(container, cards) {
  container.replaceChildren(...cards.map((c) => h("div", {class: "card", id: c.id,
                                                           "data-value": c.value},
    h("div", {class: "label"}, c.label), h("div", {class: "value"}, c.text),
    c.sub ? h("div", {class: "sub"}, c.sub) : null)));
}

function totalsCards(t) {
  return [
    {id: "total-requests", label: "Requests", value: t.requests, text: fmt.int(t.requests)},
    {id: "total-errors", label: "Error rate", value: t.error_rate, text: fmt.pct(t.error_rate),
     sub: `${fmt.int(t.errors)} errors`},
    {id: "total-refused", label: "Refused", value: t.refused, text: fmt.int(t.refused),
     sub: "key, model, quota, rate"},
    {id: "total-prompt", label: "Prompt tokens", value: t.prompt_tokens,
     text: fmt.int(t.prompt_tokens), sub: `${fmt.int(t.cached_tokens)} cached`},
    {id: "total-cache-writes", label: "Cache writes",
     value: t.cache_write_5m_tokens + t.cache_write_1h_tokens,
     text: fmt.int(t.cache_write_5m_tokens + t.cache_write_1h_tokens),
     sub: `${fmt.int(t.cache_write_1h_tokens)} kept 1 h`},
    {id: "total-completion", label: "Completion tokens", value: t.completion_tokens,
     text: fmt.int(t.completion_tokens)},
    {id: "total-cost", label: "Cost", value: t.cost, text: fmt.cost(t.cost)},
    {id: "total-latency", label: "Latency p50", value: t.latency_p50,
     text: fmt.ms(t.latency_p50), sub: `p95 ${fmt.ms(t.latency_p95)}`},
    {id: "total-ttfb", label: "Time to first byte p50", value: t.ttfb_p50,
     text: fmt.ms(t.ttfb_p50), sub: `p95 ${fmt.ms(t.ttfb_p95)}`},
  ];
}

// The four overview charts, for /dashboard and /me alike; redrawn to fit a resized window.
let lastOverview = null;
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (lastOverview) renderCharts(lastOverview); }, 100);
});

function renderCharts(overview) {
  lastOverview = overview;
  // the range shown, for whoever reads the page (and its tests)
  const totals = document.getElementById("totals");
  totals.dataset.since = overview.since;
  totals.dataset.until = overview.until;
  totals.dataset.step = overview.step;
  const time = (ts, long) => long ? fmt.time(ts, true)
    : overview.step >= 86400 ? fmt.day(ts) : fmt.time(ts);
  const points = overview.series;
  const charts = [
    ["chart-requests", "bar", fmt.short, [{key: "ok", label: "Succeeded", color: 0},
                                          {key: "errors", label: "Errors", color: 3},
                                          {key: "refused", label: "Refused", color: 4}]],
    ["chart-tokens", "bar", fmt.short, [{key: "prompt_uncached", label: "Prompt", color: 0},
                                        {key: "cached_tokens", label: "Cached prompt", color: 1},
                                        {key: "completion_tokens", label: "Completion",
                                         color: 2}]],
    ["chart-cost", "line", fmt.cost, [{key: "cost", label: "Cost (USD)", color: 2}]],
    ["chart-latency", "line", fmt.ms, [{key: "latency_p50", label: "Latency p50", color: 0},
                                       {key: "latency_p95", label: "Latency p95", color: 3},
                                       {key: "ttfb_p50", label: "TTFB p50", color: 1},
                                       {key: "ttfb_p95", label: "TTFB p95", color: 4}]],
  ];
  const shaped = points.map((p) => ({...p, ok: p.requests - p.errors - p.refused,
                                     prompt_uncached: p.prompt_tokens - p.cached_tokens}));
  for (const [id, kind, format, series] of charts) {
    const el = document.getElementById(id);
    drawChart(el, {points: shaped, series, kind, format, time, label: id});
  }
}

// A table from rows: columns [{label, get(row) -> text, cls}]; onRow(row) when clicked.
function renderTable(container, columns, rows, {onRow, empty, rowAttrs} = {}) {
  if (!rows.length) {
    container.replaceChildren(h("p", {class: "empty"}, empty || "Nothing in this range."));
    return;
  }
  const head = h("tr", null, columns.map((c) => h("th", {class: c.cls}, c.label)));
  const body = rows.map((row) => {
    const attrs = rowAttrs ? rowAttrs(row) : {};
    return h("tr", {
    ...attrs, class: [attrs.class, onRow && "clickable"].filter(Boolean).join(" ") || null,
    tabindex: onRow ? "0" : null,
    onclick: onRow ? () => onRow(row) : null,
    onkeydown: onRow ? (e) => { if (e.key === "Enter") onRow(row); } : null,
  }, columns.map((c) => h("td", {class: c.cls}, c.get(row))));
  });
  container.replaceChildren(h("div", {class: "table-wrap"},
                              h("table", null, h("thead", null, head), h("tbody", null, body))));
}

const REQUEST_COLUMNS = [
  {label: "Time", get: (r) => fmt.time(r.ts, true)},
  {label: "Status", get: (r) => h("span", {class: `badge ${r.status >= 400 ? "bad" : "ok"}`},
                                  r.status)},
  {label: "Token", get: (r) => r.token ?? "–"},
  {label: "Model", get: (r) => r.model ?? "–"},
  {label: "Channel", get: (r) => r.channel ?? "–"},
  {label: "Client", get: (r) => r.client ?? "–"},
  {label: "Tokens", cls: "num", get: (r) => fmt.int(r.total_tokens)},
  {label: "Cost", cls: "num", get: (r) => fmt.cost(r.cost)},
  {label: "Latency", cls: "num", get: (r) => fmt.ms(r.latency_ms)},
  {label: "Error", cls: "error-text", get: (r) => r.error ?? ""},
];

// The whole usage row in a dialog.
function showRow(row) {
  const dialog = document.getElementById("row-dialog");
  const list = h("dl", null, Object.entries(row).map(([name, value]) => [
    h("dt", null, name),
    h("dd", {"data-field": name}, value == null ? "null"
      : name === "ts" ? `${value} (${fmt.time(value, true)})` : String(value))]));
  dialog.querySelector(".dialog-body").replaceChildren(list);
  dialog.showModal();
}

function setupDialog() {
  const dialog = document.getElementById("row-dialog");
  dialog.querySelector("button.close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
}

// Quota bars: one block per quota, one bar per dimension it limits.
function renderQuotas(container, quotas, {withName = true} = {}) {
  if (!quotas.length) {
    container.replaceChildren(h("p", {class: "empty"}, "No quotas configured."));
    return;
  }
  container.replaceChildren(...quotas.map((q) => {
    const dims = ["tokens", "requests", "cost"].filter((d) => q[d]);
    const resets = q.resets_at
      ? `resets ${fmt.time(Date.parse(q.resets_at) / 1000, true)} ${fmt.zone()}`
      : "never resets";
    return h("div", {class: "quota", "data-scope": q.scope, "data-name": q.name ?? "",
                     "data-period": q.period},
      h("div", {class: "quota-head"},
        h("strong", null, withName ? `${q.scope} ${q.name}` : q.scope),
        h("span", {class: "muted"}, ` · ${q.period} · ${resets}`)),
      dims.map((d) => {
        const dim = q[d];
        const share = dim.limit ? Math.min(1, (dim.used + dim.reserved) / dim.limit) : 1;
        const format = d === "cost" ? fmt.cost : fmt.int;
        const level = share >= 0.9 ? "bad" : share >= 0.7 ? "warn" : "ok";
        const fill = h("div", {class: `fill ${level}`});
        fill.style.width = `${(share * 100).toFixed(2)}%`;
        return h("div", {class: "bar-row", "data-dim": d, "data-used": dim.used,
                         "data-reserved": dim.reserved, "data-limit": dim.limit},
          h("span", {class: "dim"}, d),
          h("div", {class: "bar", role: "meter", "aria-valuemin": 0,
                    "aria-valuemax": dim.limit, "aria-valuenow": dim.used}, fill),
          h("span", {class: "bar-text"},
            `${format(dim.used)} / ${format(dim.limit)}`,
            dim.reserved ? ` (+${format(dim.reserved)} reserved)` : ""));
      }));
  }));
}

window.cr = {h, fmt, Page, rangePicker, renderCards, totalsCards, renderCharts, renderTable,
             REQUEST_COLUMNS, showRow, setupDialog, renderQuotas};

// Say once, beside the range, which clock the page's times are on.
for (const el of document.querySelectorAll("[data-zone]")) {
  el.textContent = `times in ${fmt.zone()}`;
}
