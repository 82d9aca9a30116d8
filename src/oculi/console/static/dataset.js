// The dataset page: the class histogram, the task's label histograms and the image grid with each sample's labels drawn by its task's view.
import { barChart } from "./chart.js";

const counts = JSON.parse(document.getElementById("histogram-data").textContent); // {split: {class: n}}
barChart(document.getElementById("histogram"), counts, { yLabel: "count" });
// the task's label histograms (box sizes, mask areas): one chart each, a bar per split and bin
for (const h of JSON.parse(document.getElementById("statistics-data").textContent)) {
  const box = document.querySelector(`.statistic[data-name="${h.name}"]`);
  barChart(box, h.counts, { yLabel: "count", xLabel: h.unit, title: h.title, order: h.bins });
}

const grid = document.getElementById("grid");
const cells = JSON.parse(document.getElementById("cells-data").textContent);
const view = await import(`./views/${grid.dataset.view}.js`);
const byIndex = new Map(cells.map((c) => [String(c.index), c]));

for (const figure of grid.querySelectorAll(".cell")) {
  const cell = byIndex.get(figure.dataset.index);
  const stage = figure.querySelector(".stage");
  const caption = figure.querySelector(".labels");
  if (cell.labels.error) { caption.textContent = cell.labels.error; caption.className = "labels error"; continue; }
  view.drawLabels(stage, stage.querySelector("img"), cell.labels, caption).then(() => figure.classList.add("drawn"));
}

// click an image: full size, labels drawn again at that size
const zoom = document.getElementById("zoom");
grid.addEventListener("click", async (event) => {
  const link = event.target.closest("a.imglink");
  if (!link || event.metaKey || event.ctrlKey) return;
  event.preventDefault();
  const cell = byIndex.get(link.closest(".cell").dataset.index);
  const stage = document.getElementById("zoom-stage");
  const img = new Image();
  img.src = link.href;
  img.alt = link.getAttribute("aria-label");
  stage.replaceChildren(img);
  zoom.showModal();
  const caption = document.createElement("p");
  caption.className = "small";
  await view.drawLabels(stage, img, cell.labels, caption);
  zoom.appendChild(caption);
  zoom.addEventListener("close", () => caption.remove(), { once: true });
});
