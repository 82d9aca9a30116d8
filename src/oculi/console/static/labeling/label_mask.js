// Semantic segmentation: a class-index map at the image's full size, painted with a brush or eraser (adjustable
// size), polygons and flood fill; class colours (the saved PNG's palette) drawn over the image with adjustable
// opacity; undo/redo; saved after every stroke as one indexed PNG per image.
import { Session, Stage, categories, classButtons, classKey, header, imageUrl, loadMask, markClass, navigation, saveMask, status, vocColour } from "./common.js";
import { svgEl } from "../views/common.js";

const viewport = document.getElementById("viewport");
const stageEl = document.getElementById("stage");
const stage = new Stage(viewport, stageEl, document.getElementById("image"));
const canvas = document.createElement("canvas");
stageEl.appendChild(canvas);
const guide = svgEl("svg", { class: "lab-overlay" }, stageEl);
const ctx = canvas.getContext("2d");
const sizeInput = document.getElementById("size");
const opacityInput = document.getElementById("opacity");
const colours = categories.map((_, i) => vocColour(i));
let W = 0, H = 0, map = null, image = null;
let tool = "brush", current = Math.min(1, categories.length - 1);
let undo = [], redo = [];
let stroke = null, polygon = [], panning = null, dirty = false;

function draw(x0 = 0, y0 = 0, x1 = W, y1 = H) {
  if (!map) return;
  const alpha = Math.round(255 * Number(opacityInput.value) / 100);
  const d = image.data;
  for (let y = Math.max(0, y0 | 0); y < Math.min(H, Math.ceil(y1)); y++) {
    for (let x = Math.max(0, x0 | 0); x < Math.min(W, Math.ceil(x1)); x++) {
      const i = y * W + x, v = map[i], c = colours[v] || [255, 255, 255];
      d[i * 4] = c[0]; d[i * 4 + 1] = c[1]; d[i * 4 + 2] = c[2]; d[i * 4 + 3] = v ? alpha : 0;
    }
  }
  ctx.putImageData(image, 0, 0);
}

function remember() { undo.push(map.slice()); if (undo.length > 30) undo.shift(); redo = []; }

function disc(cx, cy, value) {
  const r = Number(sizeInput.value) / 2;
  const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
    if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r) map[y * W + x] = value;
  }
  draw(x0, y0, x1 + 1, y1 + 1);
}

function line(a, b, value) {
  const steps = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, Number(sizeInput.value) / 4)));
  for (let s = 1; s <= steps; s++) disc(a[0] + (b[0] - a[0]) * s / steps, a[1] + (b[1] - a[1]) * s / steps, value);
}

function fillPolygon(points, value) {
  const ys = points.map((p) => p[1]);
  const top = Math.max(0, Math.floor(Math.min(...ys))), bottom = Math.min(H - 1, Math.ceil(Math.max(...ys)));
  for (let y = top; y <= bottom; y++) {
    const cy = y + 0.5, xs = [];
    for (let k = 0; k < points.length; k++) {
      const [ax, ay] = points[k], [bx, by] = points[(k + 1) % points.length];
      if ((ay <= cy && by > cy) || (by <= cy && ay > cy)) xs.push(ax + (cy - ay) * (bx - ax) / (by - ay));
    }
    xs.sort((a, b) => a - b);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      for (let x = Math.max(0, Math.ceil(xs[k] - 0.5)); x <= Math.min(W - 1, Math.floor(xs[k + 1] - 0.5)); x++) map[y * W + x] = value;
    }
  }
  draw();
}

function flood(sx, sy, value) {
  const start = sy * W + sx, from = map[start];
  if (from === value) return;
  const stack = [start];
  while (stack.length) {
    const i = stack.pop();
    if (map[i] !== from) continue;
    map[i] = value;
    const x = i % W;
    if (x > 0) stack.push(i - 1);
    if (x < W - 1) stack.push(i + 1);
    if (i >= W) stack.push(i - W);
    if (i < W * (H - 1)) stack.push(i + W);
  }
  draw();
}

function renderGuide() {
  guide.replaceChildren();
  if (polygon.length) {
    const unit = 1 / stage.scale;
    svgEl("polyline", { points: polygon.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#fff", "stroke-width": 2 * unit, "stroke-dasharray": `${4 * unit} ${3 * unit}` }, guide);
    for (const [x, y] of polygon) svgEl("circle", { cx: x, cy: y, r: 3 * unit, fill: "#fff" }, guide);
  }
}

async function save() {
  const item = session.item;
  if (!item || !map) return;
  dirty = false;
  await saveMask(item.idx, map, W, H);
  session.markSaved({ width: W, height: H });
}

const session = new Session(async (item) => {
  header(item);
  polygon = []; undo = []; redo = []; renderGuide();
  if (!item) return;
  ({ width: W, height: H } = await stage.open(imageUrl(item.idx)));
  for (const el of [canvas, guide]) { el.setAttribute("width", W); el.setAttribute("height", H); }
  guide.setAttribute("viewBox", `0 0 ${W} ${H}`);
  canvas.style.width = `${W}px`; canvas.style.height = `${H}px`;
  image = ctx.createImageData(W, H);
  const proposed = item.state === "unlabeled" && item.proposal;
  map = (item.state !== "unlabeled" && await loadMask(item.idx, W, H)) || (proposed && await loadMask(item.idx, W, H, true)) || new Uint8Array(W * H);
  dirty = false;
  status(item.state === "unlabeled" ? "" : `labeled (${item.state})`);
  draw();
  viewport.focus({ preventScroll: true });
});
stage.onchange = renderGuide;

function changed() { dirty = true; save(); }

viewport.addEventListener("contextmenu", (e) => e.preventDefault());
viewport.addEventListener("pointerdown", (e) => {
  if (!map) return;
  viewport.setPointerCapture(e.pointerId);
  if (e.shiftKey || e.button === 1 || e.button === 2) { panning = [e.clientX, e.clientY]; return; }
  const [x, y] = stage.point(e);
  if (tool === "polygon") { polygon.push([Math.round(x * 10) / 10, Math.round(y * 10) / 10]); renderGuide(); return; }
  if (tool === "fill") {
    if (x >= 0 && y >= 0 && x < W && y < H) { remember(); flood(Math.floor(x), Math.floor(y), current); changed(); }
    return;
  }
  remember();
  const value = tool === "eraser" ? 0 : current;
  stroke = { last: [x, y], value };
  disc(x, y, value);
});
viewport.addEventListener("pointermove", (e) => {
  if (panning) { stage.pan(e.clientX - panning[0], e.clientY - panning[1]); panning = [e.clientX, e.clientY]; return; }
  if (!stroke) return;
  const p = stage.point(e);
  line(stroke.last, p, stroke.value);
  stroke.last = p;
});
viewport.addEventListener("pointerup", () => {
  panning = null;
  if (stroke) { stroke = null; changed(); }
});
viewport.addEventListener("dblclick", () => closePolygon());

function closePolygon() {
  if (tool !== "polygon") return;
  const points = polygon.filter((p, k) => k === 0 || p.join() !== polygon[k - 1].join());
  polygon = [];
  renderGuide();
  if (points.length < 3) return;
  remember();
  fillPolygon(points, current);
  changed();
}

function pickTool(name) {
  tool = name;
  polygon = []; renderGuide();
  for (const b of document.querySelectorAll("#tools [data-tool]")) b.setAttribute("aria-pressed", b.dataset.tool === name ? "true" : "false");
}

function step(from, to) {
  if (!from.length || !map) return;
  to.push(map.slice());
  map = from.pop();
  draw();
  changed();
}

function pick(i) { current = i; markClass([i]); if (tool === "eraser") pickTool("brush"); }
classButtons(pick, (i) => vocColour(i));
markClass([current]);
pickTool("brush");
navigation(session, async () => { if (dirty) await save(); });
for (const b of document.querySelectorAll("#tools [data-tool]")) b.addEventListener("click", () => pickTool(b.dataset.tool));
document.getElementById("undo").addEventListener("click", () => step(undo, redo));
document.getElementById("redo").addEventListener("click", () => step(redo, undo));
document.getElementById("accept").addEventListener("click", () => accept());
sizeInput.addEventListener("input", () => { document.getElementById("size-value").textContent = sizeInput.value; });
opacityInput.addEventListener("input", () => draw());

async function accept() { if (session.item) { await save(); await session.next(); } }

document.addEventListener("keydown", async (e) => {
  if (e.target.closest("input[type=text], textarea, select")) return;
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); if (e.shiftKey) step(redo, undo); else step(undo, redo); return; }
  if ((e.ctrlKey || e.metaKey) && key === "y") { e.preventDefault(); step(redo, undo); return; }
  const i = classKey(e);
  if (i !== null) { e.preventDefault(); pick(i); return; }
  const tools = { b: "brush", e: "eraser", p: "polygon", f: "fill" };
  if (tools[key] && !e.ctrlKey && !e.metaKey) { pickTool(tools[key]); return; }
  if (e.key === "[" || e.key === "]") {
    sizeInput.value = Math.max(1, Number(sizeInput.value) + (e.key === "]" ? 2 : -2));
    sizeInput.dispatchEvent(new Event("input"));
  }
  if (e.key === "Enter") { e.preventDefault(); if (tool === "polygon" && polygon.length) closePolygon(); else await accept(); }
  if (key === "a" && !e.ctrlKey) { e.preventDefault(); await accept(); }
  if (e.key === "Escape") { polygon = []; renderGuide(); }
});

session.start();
