// Shared helpers of the per-task views: an SVG overlay sized to the image's own pixels.
const NS = "http://www.w3.org/2000/svg";

export function svgEl(name, attrs = {}, parent = null) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

/** Wait for `img` to decode; resolves with its natural size. */
export function loaded(img) {
  return new Promise((resolve) => {
    const done = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    if (img.complete && img.naturalWidth) done(); else img.addEventListener("load", done, { once: true });
  });
}

/** An SVG laid exactly over `img` inside `stage`, whose coordinates are the image's pixels. */
export async function overlay(stage, img) {
  const { width, height } = await loaded(img);
  stage.querySelector("svg.overlay")?.remove();
  const svg = svgEl("svg", { class: "overlay", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet" });
  stage.appendChild(svg);
  // image pixels per CSS pixel as drawn (the SVG scales like the image: "contain"), to size text and strokes
  const r = svg.getBoundingClientRect();
  const unit = r.width && r.height ? 1 / Math.min(r.width / width, r.height / height) : 1;
  return { svg, width, height, unit };
}

export const COLOURS = ["#f43f5e", "#22c55e", "#3b82f6", "#eab308", "#a855f7", "#06b6d4", "#f97316", "#84cc16"];

/** Class names as small tags in `caption`. */
export function tags(caption, names) {
  caption.replaceChildren(...names.map((n) => { const t = document.createElement("span"); t.className = "classtag"; t.textContent = n; return t; }));
}
