// A small SVG chart library for the console: line charts (axes, ticks, units, legend, hover values) and
// grouped bar charts. No dependencies; colours come from the stylesheet (.c0 … .c7).
const NS = "http://www.w3.org/2000/svg";
const W = 480, H = 230, M = { l: 56, r: 14, t: 10, b: 38 };

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

/** Round tick values covering [lo, hi]: about `count` of them at 1/2/5 × 10^k steps. */
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => raw <= s);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

export function format(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return +v.toPrecision(4) + "";
}

/** Tick positions (log10 values) for a log axis over [lo, hi] (log10 units): decades, with 2/5 or 3 between
 * them on short ranges, or round values inside a range shorter than a decade. */
export function logTicks(lo, hi) {
  const span = hi - lo;
  const steps = span > 3 ? [1] : span > 1.5 ? [1, 3] : [1, 2, 5];
  const out = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of steps) { const v = e + Math.log10(m); if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v); }
  }
  return out.length >= 2 ? out : ticks(10 ** lo, 10 ** hi, 4).filter((v) => v > 0).map(Math.log10);
}

/**
 * A line chart in `container`. `options`: {title, xLabel, yLabel, integerX, zero, log, logToggle}: `log` draws
 * the y axis on a log scale (values ≤ 0 left out), `logToggle` adds a "log scale" checkbox (loss curves). Call
 * `update(series)` with [{name, points: [[x, y], …]}] whenever the data change. Hovering shows every series' value
 * at the nearest x; so does the keyboard: the plot is focusable and the arrow keys (Home, End) move along x.
 */
export function lineChart(container, options = {}) {
  const box = document.createElement("div");
  box.className = "chart";
  const head = document.createElement("div");
  head.className = "chart-head";
  if (options.title) { const h = document.createElement("h3"); h.textContent = options.title; head.appendChild(h); }
  let logBox = null;
  if (options.logToggle) {
    const label = document.createElement("label");
    label.className = "small muted";
    logBox = document.createElement("input");
    logBox.type = "checkbox";
    logBox.className = "log-scale";
    logBox.checked = !!options.log;
    label.append(logBox, " log scale");
    head.appendChild(label);
    logBox.addEventListener("change", () => update(current));
  }
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", tabindex: "0",
    "aria-label": `${options.title || "chart"}: arrow keys read the values` });
  const legend = document.createElement("div");
  legend.className = "legend";
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.hidden = true;
  tip.setAttribute("aria-live", "polite");
  box.append(head, svg, legend, tip);
  container.appendChild(box);
  let current = [];
  let allX = [], sx = null, sy = null, fy = (v) => v, cursor = null, at = -1;

  function show(x) {
    if (!sx) return;
    cursor.setAttribute("x1", sx(x)); cursor.setAttribute("x2", sx(x)); cursor.setAttribute("visibility", "visible");
    tip.replaceChildren();
    const first = document.createElement("div");
    first.textContent = `${options.xLabel || "x"} ${format(x)}`;
    tip.appendChild(first);
    current.forEach((s, i) => {
      const p = s.points.find((q) => q[0] === x);
      if (!p) return;
      const row = document.createElement("div");
      row.className = `c${(s.color ?? i) % 8}`;
      const name = document.createElement("span");
      name.textContent = `● ${s.name}: `;
      const value = document.createElement("strong");
      value.textContent = format(p[1]);
      row.append(name, value);
      tip.appendChild(row);
    });
    tip.hidden = false;
    const r = svg.getBoundingClientRect();
    const left = (sx(x) / W) * r.width;
    tip.style.left = `${Math.max(0, Math.min(left + 12, r.width - tip.offsetWidth - 4))}px`;
    tip.style.top = `${(M.t / H) * r.height + 20 + head.offsetHeight}px`;
  }
  function hide() { tip.hidden = true; cursor?.setAttribute("visibility", "hidden"); }

  svg.addEventListener("mousemove", (event) => {
    if (!allX.length) return;
    const r = svg.getBoundingClientRect();
    const vx = ((event.clientX - r.left) / r.width) * W;
    at = allX.reduce((best, v, i) => (Math.abs(sx(v) - vx) < Math.abs(sx(allX[best]) - vx) ? i : best), 0);
    show(allX[at]);
  });
  svg.addEventListener("mouseleave", () => { if (document.activeElement !== svg) hide(); });
  svg.addEventListener("focus", () => { if (allX.length) show(allX[at < 0 || at >= allX.length ? (at = allX.length - 1) : at]); });
  svg.addEventListener("blur", hide);
  svg.addEventListener("keydown", (event) => {
    if (!allX.length) return;
    const moves = { ArrowLeft: at - 1, ArrowDown: at - 1, ArrowRight: at + 1, ArrowUp: at + 1, Home: 0, End: allX.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    at = Math.max(0, Math.min(allX.length - 1, moves[event.key]));
    show(allX[at]);
  });

  function update(series) {
    current = series.filter((s) => s.points.length);
    svg.replaceChildren();
    legend.replaceChildren();
    const log = logBox ? logBox.checked : !!options.log;
    fy = log ? (v) => (v > 0 ? Math.log10(v) : NaN) : (v) => v;
    const xs = current.flatMap((s) => s.points.map((p) => p[0]));
    const ys = current.flatMap((s) => s.points.map((p) => fy(p[1]))).filter(Number.isFinite);
    if (!xs.length || !ys.length) { allX = []; sx = null; return; }
    let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const pad = (y1 - y0) * 0.08 || Math.abs(y0) * 0.1 || (log ? 0.1 : 1);
    y0 -= pad; y1 += pad;
    if (!log && options.zero && y0 < 0 && Math.min(...ys) >= 0) y0 = 0;
    const xt = ticks(x0, x1, 6).filter((t) => !options.integerX || Number.isInteger(t));
    const yt = log ? logTicks(y0, y1) : ticks(y0, y1, 5);
    [y0, y1] = [Math.min(y0, yt[0]), Math.max(y1, yt[yt.length - 1])];
    sx = (x) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
    sy = (y) => H - M.b - ((y - y0) / (y1 - y0)) * (H - M.t - M.b);
    const grid = el("g", { class: "grid" }, svg);
    const axis = el("g", { class: "axis" }, svg);
    for (const t of yt) {
      el("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t) }, grid);
      el("text", { x: M.l - 6, y: sy(t) + 4, "text-anchor": "end" }, axis).textContent = format(log ? 10 ** t : t);
    }
    for (const t of xt) {
      el("line", { x1: sx(t), x2: sx(t), y1: H - M.b, y2: H - M.b + 4 }, axis);
      el("text", { x: sx(t), y: H - M.b + 16, "text-anchor": "middle" }, axis).textContent = format(t);
    }
    el("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }, axis);
    el("line", { x1: M.l, x2: M.l, y1: M.t, y2: H - M.b }, axis);
    el("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" }, axis).textContent = options.xLabel || "";
    el("text", { x: -(M.t + H - M.b) / 2, y: 12, transform: "rotate(-90)", "text-anchor": "middle" }, axis)
      .textContent = (options.yLabel || "") + (log ? " (log)" : "");
    current.forEach((s, i) => {
      const g = el("g", { class: `c${(s.color ?? i) % 8}` }, svg);
      const pts = s.points.filter((p) => Number.isFinite(fy(p[1])));
      el("path", { class: "series", d: pts.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(fy(p[1])).toFixed(1)}`).join("") }, g);
      if (pts.length <= 60) for (const p of pts) el("circle", { class: "dot", cx: sx(p[0]), cy: sy(fy(p[1])), r: 2.6 }, g);
      const item = document.createElement("span");
      item.className = `c${(s.color ?? i) % 8}`;
      const sw = document.createElement("span");
      sw.className = "swatch";
      const label = document.createElement("span");
      label.textContent = s.name;
      label.className = "legend-label";
      item.append(sw, label);
      legend.appendChild(item);
    });
    cursor = el("line", { class: "cursor", y1: M.t, y2: H - M.b, visibility: "hidden" }, svg);
    allX = [...new Set(xs)].sort((a, b) => a - b);
    if (document.activeElement === svg && at >= 0) show(allX[Math.min(at, allX.length - 1)]);
  }
  return { update, element: box };
}

/** A bar chart of `groups` ({group: {label: value}}) in `container`: one colour per group, labels along x.
 * `options`: {title, xLabel, yLabel, order (the labels in the order drawn; default: as they come)}. */
export function barChart(container, groups, options = {}) {
  const names = Object.keys(groups);
  const labels = options.order || [...new Set(names.flatMap((g) => Object.keys(groups[g])))];
  const box = document.createElement("div");
  box.className = "chart";
  container.appendChild(box);
  if (!labels.length) { box.textContent = "nothing to count"; return; }
  const rotate = labels.length > 6;
  const bottom = (rotate ? 70 : M.b) + (options.xLabel ? 14 : 0);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H + (bottom - M.b)}`, role: "img", "aria-label": options.title || "histogram" }, box);
  const h = H + (bottom - M.b);
  const max = Math.max(1, ...names.flatMap((g) => Object.values(groups[g])));
  const yt = ticks(0, max, 4);
  const top = Math.max(max, yt[yt.length - 1]);
  const sy = (y) => h - bottom - (y / top) * (h - M.t - bottom);
  const band = (W - M.l - M.r) / labels.length;
  const bw = Math.max(2, (band * 0.8) / names.length);
  const axis = el("g", { class: "axis" }, svg);
  const grid = el("g", { class: "grid" }, svg);
  for (const t of yt) {
    el("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t) }, grid);
    el("text", { x: M.l - 6, y: sy(t) + 4, "text-anchor": "end" }, axis).textContent = format(t);
  }
  el("line", { x1: M.l, x2: W - M.r, y1: h - bottom, y2: h - bottom }, axis);
  el("text", { x: -(M.t + h - bottom) / 2, y: 12, transform: "rotate(-90)", "text-anchor": "middle" }, axis)
    .textContent = options.yLabel || "count";
  if (options.xLabel) el("text", { x: (M.l + W - M.r) / 2, y: h - 3, "text-anchor": "middle" }, axis).textContent = options.xLabel;
  labels.forEach((label, i) => {
    const cx = M.l + band * i + band / 2;
    const t = el("text", rotate ? { x: cx, y: h - bottom + 10, transform: `rotate(40 ${cx} ${h - bottom + 10})` }
      : { x: cx, y: h - bottom + 16, "text-anchor": "middle" }, axis);
    t.textContent = label.length > 14 ? label.slice(0, 13) + "…" : label;
    names.forEach((g, j) => {
      const v = groups[g][label] || 0;
      const x = cx - (bw * names.length) / 2 + j * bw;
      const bar = el("rect", { class: `c${j % 8}`, x, y: sy(v), width: bw - 1, height: Math.max(0, h - bottom - sy(v)), fill: "currentColor" }, svg);
      el("title", {}, bar).textContent = `${label} (${g}): ${v}`;
    });
  });
  const legend = document.createElement("div");
  legend.className = "legend";
  names.forEach((g, j) => {
    const item = document.createElement("span");
    item.className = `c${j % 8}`;
    const sw = document.createElement("span");
    sw.className = "swatch";
    item.append(sw, document.createTextNode(g));
    legend.appendChild(item);
  });
  box.appendChild(legend);
}

/** Split metric names into panels: losses together, every other metric family together. */
export function panels(names) {
  const losses = names.filter((n) => n.includes("loss"));
  const rest = names.filter((n) => !n.includes("loss"));
  return [["Loss", losses], ["Metrics", rest]].filter(([, list]) => list.length);
}
