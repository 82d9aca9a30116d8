// Detection: boxes with their labels (and scores for an answer) drawn over the image.
import { COLOURS, overlay, svgEl, tags } from "./common.js";

function box(svg, [x1, y1, x2, y2], text, colour, unit) {
  const g = svgEl("g", { class: "box" }, svg);
  svgEl("rect", { x: x1, y: y1, width: Math.max(1, x2 - x1), height: Math.max(1, y2 - y1), stroke: colour }, g);
  // 11 CSS pixels whatever the image's size on screen; above the box, or inside it at the image's top edge
  const t = svgEl("text", { x: x1 + 2 * unit, y: Math.max(y1 - 3 * unit, 11 * unit), "font-size": 11 * unit, "stroke-width": 3 * unit }, g);
  t.textContent = text;
}

export async function drawLabels(stage, img, labels, caption) {
  const { svg, width, unit } = await overlay(stage, img);
  const sx = labels.width ? width / labels.width : 1; // boxes are in the annotation's image size
  const names = [...new Set(labels.boxes.map((b) => b.label))];
  labels.boxes.forEach((b) => box(svg, b.box.map((v) => v * sx), b.label, COLOURS[names.indexOf(b.label) % COLOURS.length], unit));
  tags(caption, [`${labels.boxes.length} box${labels.boxes.length === 1 ? "" : "es"}`]);
}

export async function drawAnswer(stage, img, answer, classes, out, minScore = 0.3) {
  const { svg, width, height, unit } = await overlay(stage, img);
  const rows = (answer.prediction || []).filter((r) => r[1] >= minScore);
  for (const [cls, score, x1, y1, x2, y2] of rows) {
    const name = classes[cls] ?? `class ${cls}`;
    box(svg, [x1 * width, y1 * height, x2 * width, y2 * height], `${name} ${score.toFixed(2)}`, COLOURS[cls % COLOURS.length], unit);
  }
  out.textContent = `${rows.length} box${rows.length === 1 ? "" : "es"} with score ≥ ${minScore}`;
}
