// /dashboard: the operator's view over the /admin JSON endpoints.
"use strict";
(() => {
  const {h, fmt} = cr;
  let by = "model";
  let rangeParams = () => ({range: "24h"});

  const page = new cr.Page({
    storageKey: "coderouter.dashboard.key",
    probe: () => page.api("/admin/config"),
    refresh,
  });
  rangeParams = cr.rangePicker(() => page.tick());
  cr.setupDialog();

  for (const tab of document.querySelectorAll("#breakdown [data-by]")) {
    tab.addEventListener("click", () => {
      by = tab.dataset.by;
      for (const other of document.querySelectorAll("#breakdown [data-by]")) {
        other.setAttribute("aria-selected", String(other === tab));
      }
      page.tick();
    });
  }
  const filters = document.getElementById("request-filters");
  filters.addEventListener("submit", (e) => { e.preventDefault(); page.tick(); });
  filters.addEventListener("change", () => page.tick());

  function requestParams() {
    const data = new FormData(filters);
    const params = {limit: 50};
    for (const name of ["token", "model", "channel", "status", "errors"]) {
      const value = (data.get(name) || "").trim();
      if (value) params[name] = value;
    }
    return params;
  }

  // Each section is drawn as soon as its answer arrives: a long range's aggregates take a
  // moment the first time, the live sections (quotas, requests, config) do not wait for them.
  async function refresh() {
    const range = rangeParams();
    const draw = (promise, render) => promise.then(render);
    await Promise.all([
      draw(page.api("/admin/overview", range), (overview) => {
        cr.renderCards(document.getElementById("totals"), cr.totalsCards(overview.totals));
        cr.renderCharts(overview);
      }),
      draw(page.api("/admin/breakdown", {...range, by}), renderBreakdown),
      draw(page.api("/admin/alerts"), renderAlerts),
      draw(page.api("/admin/channels", range), renderChannels),
      draw(page.api("/admin/quotas"), (quotas) =>
        cr.renderQuotas(document.getElementById("quota-list"), quotas.quotas)),
      draw(page.api("/admin/requests", requestParams()), (requests) =>
        cr.renderTable(document.getElementById("request-table"), cr.REQUEST_COLUMNS,
                       requests.data, {onRow: showRequest, empty: "No requests match.",
                                       rowAttrs: (r) => ({"data-id": r.id})})),
      draw(page.api("/admin/config"), renderConfig),
    ]);
  }

  function renderBreakdown(body) {
    const columns = [
      {label: body.by, get: (r) => r.key ?? "(none)"},
      {label: "Requests", cls: "num", get: (r) => fmt.int(r.requests)},
      {label: "Errors", cls: "num", get: (r) => fmt.pct(r.error_rate)},
      {label: "Refused", cls: "num", get: (r) => fmt.int(r.refused)},
      {label: "Prompt", cls: "num", get: (r) => fmt.int(r.prompt_tokens)},
      {label: "Cached", cls: "num", get: (r) => fmt.int(r.cached_tokens)},
      {label: "Cache writes", cls: "num",
       get: (r) => fmt.int(r.cache_write_5m_tokens + r.cache_write_1h_tokens)},
      {label: "Completion", cls: "num", get: (r) => fmt.int(r.completion_tokens)},
      {label: "Cost", cls: "num", get: (r) => fmt.cost(r.cost)},
      {label: "Background", cls: "num",
       get: (r) => `${fmt.cost(r.background_cost)} (${fmt.int(r.background_requests)})`},
      {label: "Latency p50/p95", cls: "num",
       get: (r) => `${fmt.ms(r.latency_p50)} / ${fmt.ms(r.latency_p95)}`},
      {label: "TTFB p50/p95", cls: "num",
       get: (r) => `${fmt.ms(r.ttfb_p50)} / ${fmt.ms(r.ttfb_p95)}`},
    ];
    const rows = body.others
      ? [...body.data, {...body.others, key: `${fmt.int(body.others.keys)} more`, others: true}]
      : body.data;
    cr.renderTable(document.getElementById("breakdown-table"), columns, rows,
                   {rowAttrs: (r) => ({"data-key": r.others ? null : r.key ?? "",
                                       class: r.others ? "others" : null})});
  }

  // The alert strip: a failed reload, targets cooling (counting down each second), quotas
  // at or near their limit. Countdowns run on the server's clock (the answer's `now`).
  let alertTimer = null;

  function renderAlerts(body) {
    const strip = document.getElementById("alerts");
    const skew = body.now - Date.now() / 1000;
    const items = body.alerts.map((a) => {
      if (a.kind === "reload") {
        return h("div", {class: "alert bad", "data-kind": "reload"},
          h("strong", null, "Reload failed"),
          ` ${fmt.time(a.at, true)} (${a.reason}): ${a.errors} ${a.errors === 1 ? "error" : "errors"};`
          + " the previous config is serving", " · ", h("a", {href: "#config"}, "details"));
      }
      if (a.kind === "cooling") {
        return h("div", {class: "alert bad", "data-kind": "cooling", "data-channel": a.channel,
                         "data-model": a.model, "data-until": a.until},
          h("strong", null, `${a.channel} → ${a.model}`), " cooling down, back in ",
          h("span", {class: "countdown", "data-until": a.until}, ""));
      }
      if (a.kind === "keys") {
        return h("div", {class: "alert bad", "data-kind": "keys", "data-channel": a.channel,
                         "data-until": a.until},
          h("strong", null, a.channel), ` every key (${a.keys}) cooling down, first back in `,
          h("span", {class: "countdown", "data-until": a.until}, ""));
      }
      const full = a.fullness >= 1;
      return h("div", {class: `alert ${full ? "bad" : "warn"}`, "data-kind": "quota",
                       "data-scope": a.scope, "data-name": a.name, "data-period": a.period},
        h("strong", null, `${a.scope} ${a.name}`),
        ` ${full ? "at" : "near"} its ${a.period} quota (${fmt.pct(a.fullness)})`,
        a.resets_at ? `, resets ${fmt.time(Date.parse(a.resets_at) / 1000, true)} ${fmt.zone()}`
          : "");
    });
    strip.replaceChildren(...items);
    strip.hidden = !items.length;
    const tick = () => {
      const now = Date.now() / 1000 + skew;
      for (const el of strip.querySelectorAll(".countdown")) {
        const left = Math.max(0, Math.round(Number(el.dataset.until) - now));
        el.textContent = left >= 3600 ? `${Math.floor(left / 3600)} h ${Math.floor(left % 3600 / 60)} min`
          : left >= 60 ? `${Math.floor(left / 60)} min ${left % 60} s` : `${left} s`;
      }
    };
    tick();
    clearInterval(alertTimer);
    alertTimer = items.length ? setInterval(tick, 1000) : null;
  }

  // A request's row, and below it its captured bodies when `capture:` kept them.
  async function showRequest(row) {
    cr.showRow(row);
    const body = document.querySelector("#row-dialog .dialog-body");
    const box = h("section", {class: "capture", id: "capture"},
                  h("p", {class: "muted"}, "Looking for captured bodies…"));
    body.appendChild(box);
    let found = null;
    try {
      found = await page.api(`/admin/captures/${encodeURIComponent(row.request_id)}`);
    } catch (e) {
      box.replaceChildren(h("p", {class: "muted", id: "capture-none"},
        "No captured bodies (capture is off, this request was not sampled, or they expired)."));
      return;
    }
    const pretty = (text) => {
      try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
    };
    const part = (id, title, text, cut) => [
      h("h4", null, title, cut ? h("span", {class: "muted"}, " (cut at capture.max_body)") : ""),
      h("pre", {class: "capture-body", id}, pretty(text))];
    box.replaceChildren(
      ...part("capture-request", "Request body", found.request, found.request_truncated),
      ...part("capture-response", "Response", found.response, found.response_truncated));
  }

  function stateBadge(t) {
    const text = t.state === "cooling" ? `cooling until ${fmt.time(t.cooling_until, true)}`
      : t.state;
    const level = {healthy: "ok", trial: "warn", cooling: "bad", disabled: "muted"}[t.state];
    return h("span", {class: `badge ${level} state`}, text);
  }

  function renderChannels(body) {
    const columns = [
      {label: "Target", get: (t) => h("span", null, h("strong", null, t.channel),
                                       h("span", {class: "muted"}, ` → ${t.model}`))},
      {label: "State", get: stateBadge},
      {label: "Keys", get: (t) => t.keys.length ? t.keys.map((k) => h("span", {
        class: `chip ${k.state === "cooling" ? "bad" : "ok"}`, "data-key-index": k.index,
        title: k.cooling_until ? `cooling until ${fmt.time(k.cooling_until, true)}` : "ready"},
        `#${k.index} ${k.state}`)) : h("span", {class: "muted"}, "none")},
      {label: "Prio / weight", cls: "num", get: (t) => `${t.priority} / ${t.weight}`},
      {label: "Requests", cls: "num", get: (t) => fmt.int(t.requests)},
      {label: "Errors", cls: "num", get: (t) => fmt.pct(t.error_rate)},
      {label: "Latency p50/p95", cls: "num",
       get: (t) => `${fmt.ms(t.latency_p50)} / ${fmt.ms(t.latency_p95)}`},
      {label: "In flight", cls: "num", get: (t) => `${t.in_flight} (${t.streams} streams)`},
      {label: "Last error", cls: "error-text", get: (t) => t.last_error
        ? `${fmt.time(t.last_error.ts, true)} ${t.last_error.status}: ${t.last_error.error}`
        : ""},
    ];
    const container = document.getElementById("channel-groups");
    container.replaceChildren(...body.groups.map((g) => {
      const box = h("div", {class: "group", "data-group": g.name},
        h("h3", null, g.name, h("span", {class: "muted"},
          ` · cooldown ${g.cooldown}s · ${g.attempts} attempts`)));
      const targetTable = (targets, rule) => {
        const table = h("div");
        cr.renderTable(table, columns, targets, {rowAttrs: (t) => ({
          class: "target", "data-channel": t.channel, "data-model": t.model,
          "data-state": t.state, "data-rule": rule})});
        return table;
      };
      box.appendChild(targetTable(g.targets, null));
      for (const rule of g.rules || []) {
        box.appendChild(h("h4", {class: "rule", "data-rule": rule.name}, `rule ${rule.name}`));
        box.appendChild(targetTable(rule.targets, rule.name));
      }
      return box;
    }));
    if (!body.groups.length) container.replaceChildren(h("p", {class: "empty"}, "No routes."));
  }

  function renderConfig(c) {
    const last = c.last_reload;
    const result = last
      ? h("div", {class: `reload ${last.result === "failed" ? "bad" : "ok"}`, id: "last-reload",
                  "data-result": last.result},
          h("strong", null, `Last reload: ${last.result}`),
          ` (${last.reason}, ${fmt.time(last.at, true)})`,
          last.errors.length ? h("ul", {class: "errors"}, last.errors.map((e) =>
            h("li", null, h("code", null, e.path), `: ${e.message}`))) : null)
      : h("div", {class: "reload", id: "last-reload", "data-result": "none"},
          "No reload since start.");
    const list = (items) => items.length ? items.join(", ") : "–";
    const quota = (qs) => list(qs.map((q) => [q.tokens != null && `${fmt.int(q.tokens)} tokens`,
      q.requests != null && `${fmt.int(q.requests)} requests`,
      q.cost != null && fmt.cost(q.cost)].filter(Boolean).join(" + ") + `/${q.period}`));
    const rate = (r) => r ? [r.rpm && `${r.rpm} rpm`, r.tpm && `${fmt.int(r.tpm)} tpm`,
      r.concurrent && `${r.concurrent} concurrent`].filter(Boolean).join(", ") : "–";
    const tables = h("div", {class: "config-tables"});
    const add = (title, columns, rows) => {
      const box = h("div");
      cr.renderTable(box, columns, rows, {empty: "None."});
      tables.appendChild(h("div", null, h("h3", null, title), box));
    };
    add("Channels", [{label: "Name", get: (x) => x.name}, {label: "Type", get: (x) => x.type},
      {label: "Enabled", get: (x) => x.enabled ? "yes" : "no"},
      {label: "Keys", cls: "num", get: (x) => x.keys},
      {label: "Models", get: (x) => list(x.models)}], c.channels);
    add("Model groups", [{label: "Name", get: (x) => x.name},
      {label: "Targets, price in/out per 1M", get: (x) => list(x.targets.map((t) =>
        `${t.channel}/${t.model} ${t.price
          ? `${fmt.cost(t.price.input)} / ${fmt.cost(t.price.output)}` : "(no price)"}`))}],
        c.model_groups);
    add("Token groups", [{label: "Name", get: (x) => x.name},
      {label: "Models", get: (x) => x.models ? list(x.models) : "all"},
      {label: "Quotas", get: (x) => quota(x.quotas)},
      {label: "Rate limit", get: (x) => rate(x.rate_limit)}], c.token_groups);
    add("Tokens", [{label: "Name", get: (x) => x.name}, {label: "Group", get: (x) => x.group ?? "–"},
      {label: "Enabled", get: (x) => x.enabled ? "yes" : "no"},
      {label: "Expires", get: (x) => x.expires ? fmt.time(x.expires, true) : "never"},
      {label: "Quotas", get: (x) => quota(x.quotas)},
      {label: "Rate limit", get: (x) => rate(x.rate_limit)}], c.tokens);
    document.getElementById("config-summary").replaceChildren(
      h("p", null, h("strong", {id: "config-line"}, c.summary)),
      h("p", {class: "muted"}, `${c.path} · loaded ${fmt.time(c.loaded_at, true)} · `
        + `${c.reloads_ok} reloads, ${c.reloads_failed} failed`),
      result, c.warnings.length ? h("ul", {class: "warnings", id: "config-warnings"},
        c.warnings.map((w) => h("li", null, w))) : null, tables);
  }
})();
