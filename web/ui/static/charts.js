// Inline SVG charts, hand-written: stacked bars per day, line plots with a cursor that follows a video.
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const Charts = window.Charts = {};

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
Charts.svg = svg;
const PAD = { l: 44, r: 8, t: 8, b: 22 };
Charts.PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(container, width, height) {
  container.textContent = "";
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", class: "chart-svg", role: "img" });
  container.append(root);
  return root;
}

function legend(container, items) {
  const l = document.createElement("div");
  l.className = "legend";
  for (const [name, colour] of items) {
    const s = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = colour;  // CSSOM, which the page's CSP allows (no inline style attributes)
    s.append(swatch, name);
    l.append(s);
  }
  container.append(l);
}

// bars: labels[i] on x; series [{name, colour, values[i]}] stacked
Charts.stackedBars = (container, labels, series, opts) => {
  const W = Math.max(container.clientWidth, 240) || 480, H = (opts && opts.height) || 180;
  const root = frame(container, W, H);
  if (!labels.length) { root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, "no data")); return; }
  const totals = labels.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
  const max = niceMax(Math.max(...totals));
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b, bw = iw / labels.length;
  axisY(root, max, W, H);
  labels.forEach((label, i) => {
    let y = PAD.t + ih;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (!v) continue;
      const h = ih * v / max;
      y -= h;
      const r = svg("rect", { x: PAD.l + i * bw + bw * 0.15, y, width: bw * 0.7, height: h, fill: s.colour });
      r.append(svg("title", {}, `${label} ${s.name}: ${v}`));
      root.append(r);
    }
    if (labels.length <= 16 || i % Math.ceil(labels.length / 8) === 0)
      root.append(svg("text", { x: PAD.l + i * bw + bw / 2, y: H - 6, "text-anchor": "middle", class: "tick" }, label.slice(5)));
  });
  legend(container, series.map((s) => [s.name, s.colour]));
};

function axisY(root, max, W, H, min) {
  const lo = min || 0, ih = H - PAD.t - PAD.b;
  for (let k = 0; k <= 4; k++) {
    const v = lo + (max - lo) * k / 4, y = PAD.t + ih - ih * k / 4;
    root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }));
    root.append(svg("text", { x: PAD.l - 4, y: y + 4, "text-anchor": "end", class: "tick" }, Math.abs(v) >= 100 ? v.toFixed(0) : +v.toFixed(1)));
  }
}

// lines over a shared x: series [{name, colour, xs, ys}] (null ys are gaps). Returns {setCursor(x)}.
// onPick(x) is called with the x under a click (to seek a video there).
Charts.lines = (container, series, opts) => {
  const o = opts || {};
  // drawn at the container's width, so text keeps its size however wide the page is
  const W = Math.max(container.clientWidth - 2, 240) || o.width || 640, H = o.height || 200;
  const root = frame(container, W, H);
  const xs = series.flatMap((s) => s.xs), ys = series.flatMap((s) => s.ys.filter((v) => v !== null && Number.isFinite(v)));
  if (!xs.length || !ys.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "muted" }, o.empty || "no data"));
    return { setCursor() {}, root };
  }
  const x0 = o.xMin !== undefined ? o.xMin : Math.min(...xs), x1 = o.xMax !== undefined ? o.xMax : Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-6) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  const sx = (x) => PAD.l + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * iw;
  const sy = (y) => PAD.t + ih - (y - y0) / (y1 - y0) * ih;
  axisY(root, y1, W, H, y0);
  for (const s of series) {
    let d = "", pen = false;
    s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (y === null || !Number.isFinite(y)) { pen = false; return; }
      d += `${pen ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      pen = true;
    });
    const p = svg("path", { d, fill: "none", stroke: s.colour, "stroke-width": s.width || 1.5, class: "series" });
    if (s.dash) p.setAttribute("stroke-dasharray", s.dash);
    p.append(svg("title", {}, s.name));
    root.append(p);
    if (s.xs.length <= 40) {  // few points (days): each one visible, even a single one
      s.xs.forEach((x, i) => {
        const y = s.ys[i];
        if (y === null || !Number.isFinite(y)) return;
        const dot = svg("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 2.5, fill: s.colour });
        dot.append(svg("title", {}, `${s.name}: ${+y.toFixed(2)}`));
        root.append(dot);
      });
    }
  }
  for (const m of o.marks || []) {
    root.append(svg("line", { x1: sx(m.x), x2: sx(m.x), y1: PAD.t, y2: PAD.t + ih, class: "mark" }));
    root.append(svg("text", { x: sx(m.x) + 3, y: PAD.t + 10, class: "tick" }, m.label));
  }
  const tick = o.xTick || ((x) => String(x));
  root.append(svg("text", { x: PAD.l, y: H - 6, class: "tick" }, tick(x0)));
  root.append(svg("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end", class: "tick" },
    o.xTick ? tick(x1) : `${x1} ${o.xLabel || "frame"}`));
  // the playhead: shown once setCursor places it (plots under a video), never on the history charts
  const cursor = svg("line", { x1: sx(x0), x2: sx(x0), y1: PAD.t, y2: PAD.t + ih, class: "cursor", visibility: "hidden" });
  root.append(cursor);
  if (o.onPick) {
    root.addEventListener("click", (ev) => {
      const box = root.getBoundingClientRect();
      const px = (ev.clientX - box.left) / box.width * W;
      o.onPick(Math.round(x0 + (px - PAD.l) / iw * (x1 - x0)));
    });
  }
  if (series.length > 1 || o.legend) legend(container, series.map((s) => [s.name, s.colour]));
  return {
    root,
    setCursor(x) {
      const px = sx(Math.min(Math.max(x, x0), x1)).toFixed(1);
      cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
      cursor.dataset.x = String(x);
    },
  };
};
