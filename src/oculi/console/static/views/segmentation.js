// Segmentation: the class mask laid over the image (the label mask of a sample, or the answer's mask PNG).
import { loaded, tags } from "./common.js";

async function lay(stage, img, src, recolour) {
  await loaded(img);
  stage.querySelector(".maskimg")?.remove();
  const mask = new Image();
  mask.src = src;
  await mask.decode();
  const canvas = document.createElement("canvas");
  canvas.width = mask.naturalWidth;
  canvas.height = mask.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(mask, 0, 0);
  if (recolour) { // an answer's palette PNG: background (index 0, black) transparent
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    for (let i = 0; i < data.data.length; i += 4) {
      if (data.data[i] + data.data[i + 1] + data.data[i + 2] === 0) data.data[i + 3] = 0;
    }
    ctx.putImageData(data, 0, 0);
  }
  canvas.className = "maskimg";
  // cover exactly the image's drawn box inside the stage
  const place = () => {
    const r = img.getBoundingClientRect(), s = stage.getBoundingClientRect();
    const k = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
    const w = img.naturalWidth * k, h = img.naturalHeight * k;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.style.left = `${r.left - s.left + (r.width - w) / 2}px`;
    canvas.style.top = `${r.top - s.top + (r.height - h) / 2}px`;
  };
  stage.appendChild(canvas);
  place();
  new ResizeObserver(place).observe(stage);
  return canvas;
}

export async function drawLabels(stage, img, labels, caption) {
  if (labels.mask) await lay(stage, img, labels.mask, false);
  tags(caption, labels.classes || []);
}

export async function drawAnswer(stage, img, answer, classes, out, minScore = 0) {
  if (answer.mask_png_base64) await lay(stage, img, `data:image/png;base64,${answer.mask_png_base64}`, true);
  const shares = Object.entries(answer.fractions || {}).filter(([, v]) => v > 0.001).sort((a, b) => b[1] - a[1]);
  out.textContent = shares.map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(" · ");
}
