// Classification: a sample's class names as tags; an answer as bars of the top class probabilities.
import { tags } from "./common.js";

export async function drawLabels(stage, img, labels, caption) {
  tags(caption, labels.classes || []);
}

export async function drawAnswer(stage, img, answer, classes, out, minScore = 0) {
  const probabilities = answer.prediction || [];
  const top = probabilities.map((p, i) => [classes[i] ?? `class ${i}`, p]).sort((a, b) => b[1] - a[1]).slice(0, 5);
  const bars = document.createElement("div");
  bars.className = "bars";
  for (const [name, p] of top) {
    const label = document.createElement("span");
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(p * 100).toFixed(1)}%`;
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "mono";
    value.textContent = p.toFixed(3);
    bars.append(label, track, value);
  }
  out.replaceChildren(bars);
}
