// /me: a token holder's own usage, quotas and limits, and recent requests.
"use strict";
(() => {
  const {h, fmt} = cr;
  let rangeParams = () => ({range: "24h"});
  const page = new cr.Page({
    storageKey: "coderouter.me.key",
    probe: () => page.api("/v1/usage"),
    refresh,
  });
  rangeParams = cr.rangePicker(() => page.tick());
  cr.setupDialog();
  const filters = document.getElementById("request-filters");
  filters.addEventListener("submit", (e) => { e.preventDefault(); page.tick(); });
  filters.addEventListener("change", () => page.tick());

  function requestParams() {
    const data = new FormData(filters);
    const params = {limit: 50};
    for (const name of ["model", "status", "errors"]) {
      const value = (data.get(name) || "").trim();
      if (value) params[name] = value;
    }
    return params;
  }

  async function refresh() {
    const [overview, usage, requests] = await Promise.all([
      page.api("/me/overview", rangeParams()),
      page.api("/v1/usage"),
      page.api("/me/requests", requestParams()),
    ]);
    document.getElementById("who").textContent = usage.group
      ? `${usage.token} · ${usage.group}` : usage.token;
    cr.renderCards(document.getElementById("totals"), cr.totalsCards(overview.totals));
    cr.renderCharts(overview);
    const named = usage.quotas.map((q) => ({...q, name: q.scope === "group" ? usage.group
                                                                             : usage.token}));
    cr.renderQuotas(document.getElementById("quota-list"), named);
    renderRateLimits(usage.rate_limits);
    cr.renderTable(document.getElementById("request-table"), cr.REQUEST_COLUMNS.filter(
      (c) => c.label !== "Token"), requests.data, {onRow: cr.showRow,
      empty: "No requests match.", rowAttrs: (r) => ({"data-id": r.id})});
  }

  function renderRateLimits(limits) {
    const rows = [];
    for (const limit of limits) {
      for (const name of ["rpm", "tpm", "concurrent"]) {
        const v = limit[name];
        if (v) rows.push({scope: limit.scope, name, ...v});
      }
    }
    const columns = [
      {label: "Scope", get: (r) => r.scope}, {label: "Limit", get: (r) => r.name},
      {label: "Allowed", cls: "num", get: (r) => fmt.int(r.limit)},
      {label: "Remaining now", cls: "num", get: (r) => fmt.int(r.remaining)},
      {label: "Window resets in", cls: "num",
       get: (r) => r.resets_in == null ? "–" : `${r.resets_in} s`},
    ];
    const box = document.getElementById("rate-limits");
    cr.renderTable(box, columns, rows, {empty: "No rate limits."});
    box.prepend(h("h3", null, "Rate limits"));
  }
})();
