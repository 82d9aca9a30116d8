// Shared parts of the annotation pages: the job's API, the item queue of this browser (lease, prefetch, history),
// autosave status, class colours, and a zoomable, pannable stage whose coordinates are the image's own pixels.
import { COLOURS } from "../views/common.js";

export const root = document.getElementById("annotator");
export const job = root.dataset.job;
export const categories = JSON.parse(document.getElementById("categories").textContent);
const base = `/api/labeling/${encodeURIComponent(job)}`;
const stateEl = document.getElementById("save-state");

export const imageUrl = (idx) => `/labeling/${encodeURIComponent(job)}/image/${idx}`;
export const colour = (i) => COLOURS[i % COLOURS.length];

/** Pascal VOC's colour of class `i` (the palette of the saved mask PNGs). */
export function vocColour(i) {
  let r = 0, g = 0, b = 0, c = i;
  for (let bit = 0; bit < 8; bit++) {
    r |= ((c >> 0) & 1) << (7 - bit); g |= ((c >> 1) & 1) << (7 - bit); b |= ((c >> 2) & 1) << (7 - bit);
    c >>= 3;
  }
  return [r, g, b];
}

export function status(text, bad = false) {
  stateEl.textContent = text;
  stateEl.className = `small ${bad ? "error" : "muted"}`;
}

async function call(path, options = {}) {
  const response = await fetch(base + path, { credentials: "same-origin", ...options });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).message || message; } catch { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function counters(c) {
  if (c) document.getElementById("counters").textContent = `${c.TotalLabeled} labeled, ${c.Unlabeled} to go`;
}

/** Save `label` (JSON) of item `idx`; returns when the server has it. */
export async function saveLabel(idx, label) {
  status("saving…");
  try {
    const r = await (await call(`/items/${idx}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(label) })).json();
    counters(r.counters);
    status("saved ✓");
  } catch (e) { status(`not saved: ${e.message}`, true); throw e; }
}

/** Save a mask (class indices, row-major) as (value, count) runs. */
export async function saveMask(idx, values, width, height) {
  status("saving…");
  const runs = [];
  let start = 0;
  for (let i = 1; i <= values.length; i++) {
    if (i === values.length || values[i] !== values[start]) { runs.push([values[start], i - start]); start = i; }
  }
  const body = new DataView(new ArrayBuffer(runs.length * 5));
  runs.forEach(([v, n], k) => { body.setUint8(k * 5, v); body.setUint32(k * 5 + 1, n, true); });
  try {
    const r = await (await call(`/items/${idx}/mask?width=${width}&height=${height}`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body: body.buffer })).json();
    counters(r.counters);
    status("saved ✓");
  } catch (e) { status(`not saved: ${e.message}`, true); throw e; }
}

/** The saved mask (or the proposal) of item `idx` as a Uint8Array, or null. */
export async function loadMask(idx, width, height, proposal = false) {
  const response = await call(`/items/${idx}/mask${proposal ? "?proposal=true" : ""}`);
  if (response.status === 204) return null;
  const view = new DataView(await response.arrayBuffer());
  const out = new Uint8Array(width * height);
  let at = 0;
  for (let k = 0; k + 5 <= view.byteLength; k += 5) {
    const n = view.getUint32(k + 1, true);
    out.fill(view.getUint8(k), at, at + n);
    at += n;
  }
  return out;
}

/** This browser's walk through the queue: `show(item)` is called with each item (null: none left). */
export class Session {
  constructor(show) { this.show = show; this.history = []; this.pos = -1; this.item = null; this.ahead = null; }

  async lease(exclude) {
    const r = await (await call(`/next?exclude=${exclude.join(",")}`)).json();
    counters(r.counters);
    return r.item;
  }

  async start() {
    // what this browser labeled before (a reload, another day): ← walks back through it
    this.history = (await (await call("/mine")).json()).labeled;
    this.present(await this.lease([]));
  }

  present(item) {
    this.item = item;
    if (item) { this.history.push(item.idx); this.pos = this.history.length - 1; } else this.pos = this.history.length;
    this.show(item);
    if (item) this.prefetch();
  }

  async prefetch() {
    this.ahead = await this.lease([this.item.idx]);
    if (this.ahead) new Image().src = imageUrl(this.ahead.idx);
  }

  async load(idx) {
    const r = await (await call(`/items/${idx}`)).json();
    counters(r.counters);
    this.item = r.item;
    this.show(r.item);
  }

  async next() {
    if (this.pos < this.history.length - 1) { this.pos += 1; await this.load(this.history[this.pos]); return; }
    const current = this.item;
    if (current && current.state === "unlabeled") await call(`/items/${current.idx}/release`, { method: "POST" });
    let item = this.ahead;
    this.ahead = null;
    if (!item) item = await this.lease(current ? [current.idx] : []);
    if (item && current && item.idx === current.idx) item = null;
    if (!item) { this.item = null; this.pos = this.history.length; this.show(null); return; }
    this.present(item);
  }

  async prev() {
    if (this.pos <= 0) return;
    this.pos -= 1;
    await this.load(this.history[this.pos]);
  }

  markSaved(label) {
    if (!this.item) return;
    this.item.state = "human"; this.item.label = label;
    document.getElementById("file").textContent = `${this.item.file} (#${this.item.idx}, human)`;
  }
}

/** The stage: `img` (and any overlay) drawn at image pixels, scaled and moved inside `viewport`. */
export class Stage {
  constructor(viewport, stage, img) {
    Object.assign(this, { viewport, stage, img, scale: 1, x: 0, y: 0, width: 0, height: 0 });
    viewport.addEventListener("wheel", (e) => { e.preventDefault(); this.zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX, e.clientY); }, { passive: false });
    new ResizeObserver(() => this.width && this.fit()).observe(viewport);
  }

  async open(url) {
    this.img.src = url;
    await this.img.decode().catch(() => {});
    this.width = this.img.naturalWidth; this.height = this.img.naturalHeight;
    this.img.style.width = `${this.width}px`; this.img.style.height = `${this.height}px`;
    this.fit();
    return { width: this.width, height: this.height };
  }

  fit() {
    const r = this.viewport.getBoundingClientRect();
    this.scale = Math.min(r.width / this.width, r.height / this.height) || 1;
    this.x = (r.width - this.width * this.scale) / 2; this.y = (r.height - this.height * this.scale) / 2;
    this.apply();
  }

  apply() {
    this.stage.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.viewport.style.setProperty("--unit", `${1 / this.scale}`);
    this.onchange?.();
  }

  zoom(factor, clientX, clientY) {
    const r = this.viewport.getBoundingClientRect();
    const px = clientX - r.left, py = clientY - r.top;
    const next = Math.min(40, Math.max(0.05, this.scale * factor));
    this.x = px - (px - this.x) * (next / this.scale); this.y = py - (py - this.y) * (next / this.scale);
    this.scale = next;
    this.apply();
  }

  pan(dx, dy) { this.x += dx; this.y += dy; this.apply(); }

  /** Image pixel coordinates of a pointer event. */
  point(e) {
    const r = this.viewport.getBoundingClientRect();
    return [(e.clientX - r.left - this.x) / this.scale, (e.clientY - r.top - this.y) / this.scale];
  }
}

/** Paint the class buttons' swatches and wire them: `pick(i)` on click and on number keys 1–9. */
export function classButtons(pick, swatch = colour) {
  for (const el of root.querySelectorAll("[data-swatch]")) {
    const c = swatch(Number(el.dataset.swatch));
    el.style.background = typeof c === "string" ? c : `rgb(${c.join(",")})`;
  }
  for (const el of root.querySelectorAll("#classes [data-class]")) {
    el.addEventListener(el.tagName === "INPUT" ? "change" : "click", () => pick(Number(el.dataset.class), el));
  }
}

/** Select class button `i` as the current one. */
export function markClass(indices, proposed = []) {
  for (const el of root.querySelectorAll("#classes [data-class]")) {
    const i = Number(el.dataset.class);
    if (el.tagName === "INPUT") el.checked = indices.includes(i);
    else el.setAttribute("aria-pressed", indices.includes(i) ? "true" : "false");
    el.classList.toggle("proposed", proposed.includes(i));
  }
}

/** Number key → class index (1–9), or null. */
export function classKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || !/^[1-9]$/.test(e.key)) return null;
  const i = Number(e.key) - 1;
  return i < categories.length ? i : null;
}

/** Wire ←/→ and the Prev/Next buttons to the session. */
export function navigation(session, before = async () => {}) {
  document.getElementById("next").addEventListener("click", async () => { await before(); await session.next(); });
  document.getElementById("prev").addEventListener("click", async () => { await before(); await session.prev(); });
  document.addEventListener("keydown", async (e) => {
    if (e.target.closest("input, textarea, select")) return;
    if (e.key === "ArrowRight") { e.preventDefault(); await before(); await session.next(); }
    if (e.key === "ArrowLeft") { e.preventDefault(); await before(); await session.prev(); }
  });
}

/** Show the file name and the proposal note; hide the stage when nothing is left. */
export function header(item) {
  document.getElementById("file").textContent = item ? `${item.file} (#${item.idx}, ${item.state})` : "";
  document.getElementById("done").hidden = Boolean(item);
  document.getElementById("stage").hidden = !item;
  const p = item && item.state === "unlabeled" && item.proposal;
  document.getElementById("proposal-note").textContent = p ? `Proposal${p.model ? " from a model" : " from the input's labels"}${p.confidence !== undefined ? ` (confidence ${Number(p.confidence).toFixed(2)})` : ""}: A accepts it; edit to change it.` : "";
  document.getElementById("accept").disabled = !p;
}
