// Bounding boxes: drag on the image to draw, drag a handle to resize, the body to move; number keys pick the class
// (of the selected box too), Delete removes it; wheel zooms, Shift+drag or right-drag pans. Boxes are kept in the
// image's own pixels (the SVG's viewBox is the image size) and saved after every change.
import { svgEl } from "../views/common.js";
import { Session, Stage, categories, classButtons, classKey, colour, header, imageUrl, markClass, navigation, saveLabel, status } from "./common.js";

const viewport = document.getElementById("viewport");
const stageEl = document.getElementById("stage");
const stage = new Stage(viewport, stageEl, document.getElementById("image"));
const svg = svgEl("svg", { class: "lab-overlay" }, stageEl);
const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
let boxes = [];
let selected = -1;
let current = 0;
let size = { width: 0, height: 0 };
let drag = null;
let proposed = false;

function render() {
  svg.replaceChildren();
  const unit = 1 / stage.scale;
  boxes.forEach((b, i) => {
    const [x1, y1, x2, y2] = b.box;
    const g = svgEl("g", { "data-index": i, class: `lab-box${i === selected ? " selected" : ""}${proposed ? " proposed" : ""}` }, svg);
    svgEl("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: colour(b.label), "data-part": "body", "stroke-width": 2 * unit }, g);
    const text = svgEl("text", { x: x1 + 3 * unit, y: y1 - 4 * unit, "font-size": 13 * unit, "stroke-width": 3 * unit }, g);
    text.textContent = categories[b.label];
    if (i === selected) {
      for (const h of HANDLES) {
        const [hx, hy] = handlePoint(b.box, h);
        svgEl("rect", { x: hx - 5 * unit, y: hy - 5 * unit, width: 10 * unit, height: 10 * unit, class: "lab-handle", "data-handle": h, "stroke-width": unit }, g);
      }
    }
  });
}

function handlePoint([x1, y1, x2, y2], h) {
  const x = h.includes("w") ? x1 : h.includes("e") ? x2 : (x1 + x2) / 2;
  const y = h.includes("n") ? y1 : h.includes("s") ? y2 : (y1 + y2) / 2;
  return [x, y];
}

const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
const round = (v) => Math.round(v * 100) / 100;

function normalised([a, b, c, d]) {
  return [round(clamp(Math.min(a, c), size.width)), round(clamp(Math.min(b, d), size.height)),
    round(clamp(Math.max(a, c), size.width)), round(clamp(Math.max(b, d), size.height))];
}

let saveTimer = null;
function changed() {
  proposed = false;
  render();
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, 250);
}

async function save() {
  clearTimeout(saveTimer);
  saveTimer = null;
  const item = session.item;
  if (!item) return;
  const label = { boxes: boxes.map((b) => ({ box: b.box, label: b.label })), width: size.width, height: size.height };
  await saveLabel(item.idx, label);
  session.markSaved(label);
}

async function flush() { if (saveTimer) await save(); }

const session = new Session(async (item) => {
  header(item);
  selected = -1; drag = null;
  if (!item) return;
  size = await stage.open(imageUrl(item.idx));
  svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
  svg.setAttribute("width", size.width); svg.setAttribute("height", size.height);
  proposed = item.state === "unlabeled" && Boolean(item.proposal && item.proposal.boxes);
  const source = item.label || (proposed ? item.proposal : { boxes: [] });
  boxes = source.boxes.map((b) => ({ box: [...b.box], label: b.label }));
  status(item.state === "unlabeled" ? "" : `labeled (${item.state})`);
  render();
  viewport.focus({ preventScroll: true });
});
stage.onchange = render;

viewport.addEventListener("contextmenu", (e) => e.preventDefault());
viewport.addEventListener("pointerdown", (e) => {
  if (!session.item) return;
  viewport.setPointerCapture(e.pointerId);
  const [x, y] = stage.point(e);
  if (e.shiftKey || e.button === 2 || e.button === 1) { drag = { mode: "pan", cx: e.clientX, cy: e.clientY }; return; }
  const handle = e.target.closest("[data-handle]");
  const group = e.target.closest("[data-index]");
  if (handle && group) {
    drag = { mode: "resize", index: Number(group.dataset.index), handle: handle.dataset.handle };
  } else if (group) {
    selected = Number(group.dataset.index);
    drag = { mode: "move", index: selected, x, y, start: [...boxes[selected].box] };
    current = boxes[selected].label; markClass([current]);
  } else {
    boxes.push({ box: [x, y, x, y], label: current });
    selected = boxes.length - 1;
    drag = { mode: "draw", index: selected, x, y };
  }
  render();
});

viewport.addEventListener("pointermove", (e) => {
  if (!drag) return;
  if (drag.mode === "pan") { stage.pan(e.clientX - drag.cx, e.clientY - drag.cy); drag.cx = e.clientX; drag.cy = e.clientY; return; }
  const [x, y] = stage.point(e);
  const b = boxes[drag.index];
  if (drag.mode === "draw") b.box = [drag.x, drag.y, x, y];
  else if (drag.mode === "move") {
    const [x1, y1, x2, y2] = drag.start;
    const dx = clamp(x - drag.x, size.width) - clamp(drag.x, size.width);
    const dy = clamp(y - drag.y, size.height) - clamp(drag.y, size.height);
    const mx = Math.min(Math.max(dx, -x1), size.width - x2), my = Math.min(Math.max(dy, -y1), size.height - y2);
    b.box = [x1 + mx, y1 + my, x2 + mx, y2 + my];
  } else if (drag.mode === "resize") {
    const [x1, y1, x2, y2] = b.box;
    const h = drag.handle;
    b.box = [h.includes("w") ? x : x1, h.includes("n") ? y : y1, h.includes("e") ? x : x2, h.includes("s") ? y : y2];
  }
  render();
});

viewport.addEventListener("pointerup", () => {
  if (!drag) return;
  const d = drag;
  drag = null;
  if (d.mode === "pan") return;
  const b = boxes[d.index];
  b.box = normalised(b.box);
  if (b.box[2] - b.box[0] < 2 || b.box[3] - b.box[1] < 2) {
    boxes.splice(d.index, 1); selected = -1;
    if (d.mode === "draw") { render(); return; }
  }
  if (d.mode === "move" && b.box.every((v, k) => v === round(d.start[k]))) { render(); return; }
  changed();
});

function pick(i) {
  current = i;
  markClass([i]);
  if (selected >= 0 && boxes[selected]) { boxes[selected].label = i; changed(); }
}
classButtons(pick);
markClass([0]);
navigation(session, flush);

document.getElementById("delete").addEventListener("click", () => remove());
document.getElementById("fit").addEventListener("click", () => stage.fit());
document.getElementById("accept").addEventListener("click", () => accept());

function remove() {
  if (selected < 0) return;
  boxes.splice(selected, 1);
  selected = -1;
  changed();
}

async function accept() {
  if (!session.item) return;
  proposed = false;
  await save();
  render();
  await session.next();
}

document.addEventListener("keydown", async (e) => {
  if (e.target.closest("input, textarea, select")) return;
  const i = classKey(e);
  if (i !== null) { e.preventDefault(); pick(i); return; }
  if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); remove(); }
  if (e.key === "Escape") { selected = -1; render(); }
  if (e.key === "0") stage.fit();
  if (e.key === "a" || e.key === "A" || e.key === "Enter") { e.preventDefault(); await accept(); }
});

session.start();
