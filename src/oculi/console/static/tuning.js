// Tuning job page: objective per trial with the best so far, and Optuna's hyperparameter importances.
import { barChart, lineChart } from "./chart.js";

const data = JSON.parse(document.getElementById("tuning-data").textContent);
const charts = document.getElementById("charts");
if (data.points.length) {
  charts.replaceChildren();
  let best = null;
  const bestSoFar = data.points.map((p) => {
    best = best === null ? p.objective : (data.maximize ? Math.max(best, p.objective) : Math.min(best, p.objective));
    return [p.index, best];
  });
  lineChart(charts, { title: data.objective, xLabel: "trial", yLabel: "objective", integerX: true }).update([
    { name: "best so far", color: 1, points: bestSoFar },
    { name: "trial", color: 0, points: data.points.map((p) => [p.index, p.objective]) },  // drawn on top
  ]);
  if (Object.keys(data.importances).length) {
    const box = document.getElementById("importance");
    const h = document.createElement("h3");
    h.textContent = "Hyperparameter importance (Optuna)";
    box.appendChild(h);
    barChart(box, { importance: data.importances }, { yLabel: "importance" });
  }
}
