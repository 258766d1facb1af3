// Small SVG charts for the dashboard: one time series chart, bars or lines. No dependencies.
// Every drawn point carries data-t (bucket start, unix seconds) and data-v (its value), so
// what is drawn can be read back exactly.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  return el;
}

// The top of the y axis: four gridline steps, each a round number.
function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = value / 4;
  const power = Math.pow(10, Math.floor(Math.log10(step)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (m * power >= step) return 4 * m * power;
  }
  return 40 * power;
}

// chart(container, {points, series: [{key, label}], kind: "bar"|"line", format, time})
//   points: [{t, key1: v, key2: v, ...}]; bars are stacked in series order; null is a gap.
function drawChart(container, opts) {
  const width = Math.max(280, container.clientWidth || 600);
  const height = opts.height || 170;
  const pad = {left: 52, right: 8, top: 10, bottom: 22};
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const pts = opts.points;
  const n = Math.max(1, pts.length);
  const stacked = opts.kind === "bar";
  let top = 0;
  for (const p of pts) {
    let sum = 0;
    for (const s of opts.series) {
      const v = p[s.key];
      if (v == null) continue;
      sum = stacked ? sum + v : Math.max(sum, v);
    }
    top = Math.max(top, sum);
  }
  top = niceMax(top);
  const y = (v) => pad.top + plotH - (v / top) * plotH;
  const colW = plotW / n;
  const x = (i) => pad.left + colW * (i + 0.5);

  const svg = svgEl("svg", {viewBox: `0 0 ${width} ${height}`, width, height,
                             role: "img", "aria-label": opts.label || "chart"});
  svg.classList.add("chart");
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    const gy = y(v);
    svg.appendChild(svgEl("line", {x1: pad.left, x2: width - pad.right, y1: gy, y2: gy,
                                   class: "grid"}));
    const label = svgEl("text", {x: pad.left - 6, y: gy + 4, class: "axis", "text-anchor": "end"});
    label.textContent = opts.format(v, true);
    svg.appendChild(label);
  }
  const ticks = n <= 1 ? [0] : [0, Math.floor((n - 1) / 2), n - 1];
  for (const i of ticks) {
    if (!pts[i]) continue;
    const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
    const tx = i === 0 ? pad.left : i === n - 1 ? width - pad.right : x(i);
    const label = svgEl("text", {x: tx, y: height - 6, class: "axis", "text-anchor": anchor});
    label.textContent = opts.time(pts[i].t);
    svg.appendChild(label);
  }

  opts.series.forEach((s, si) => {
    const group = svgEl("g", {class: `series s${s.color ?? si}`, "data-series": s.key});
    if (stacked) {
      pts.forEach((p, i) => {
        const v = p[s.key] || 0;
        let below = 0;
        for (const other of opts.series.slice(0, si)) below += p[other.key] || 0;
        const h = (v / top) * plotH;
        const bar = svgEl("rect", {x: pad.left + colW * i + colW * 0.12, width: colW * 0.76,
                                   y: y(below) - h, height: h, class: "bar",
                                   "data-t": p.t, "data-v": v});
        group.appendChild(bar);
      });
    } else {
      let d = "";
      let open = false;
      pts.forEach((p, i) => {
        const v = p[s.key];
        if (v == null) { open = false; return; }
        d += `${open ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        open = true;
      });
      group.appendChild(svgEl("path", {d, class: "line"}));
      pts.forEach((p, i) => {
        const v = p[s.key];
        if (v == null) return;
        group.appendChild(svgEl("circle", {cx: x(i), cy: y(v), r: n > 40 ? 1.6 : 2.4,
                                           class: "dot", "data-t": p.t, "data-v": v}));
      });
    }
    svg.appendChild(group);
  });

  // one transparent column per bucket, with every series' value as its tooltip
  pts.forEach((p, i) => {
    const hit = svgEl("rect", {x: pad.left + colW * i, width: colW, y: pad.top, height: plotH,
                               class: "hit"});
    const title = svgEl("title");
    title.textContent = [opts.time(p.t, true),
      ...opts.series.map((s) => `${s.label}: ${p[s.key] == null ? "–" : opts.format(p[s.key])}`)
    ].join("\n");
    hit.appendChild(title);
    svg.appendChild(hit);
  });

  const legend = document.createElement("div");
  legend.className = "legend";
  opts.series.forEach((s, si) => {
    const item = document.createElement("span");
    item.className = `s${s.color ?? si}`;
    item.textContent = s.label;
    legend.appendChild(item);
  });
  container.replaceChildren(svg, legend);
}

window.drawChart = drawChart;
