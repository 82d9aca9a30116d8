// Model page and model comparison: training curves from the bundles' per-epoch history, drawn with chart.js.
import { lineChart, panels } from "./chart.js";

const charts = document.getElementById("charts");

function metricNames(history) {
  return [...new Set(history.flatMap((row) => Object.keys(row)))].filter((k) => k !== "epoch" && k !== "seconds").sort();
}

const single = document.getElementById("history-data");
if (single) {
  const history = JSON.parse(single.textContent);
  const names = metricNames(history);
  if (names.length) charts.replaceChildren();
  for (const [title, list] of panels(names)) {
    lineChart(charts, { title, xLabel: "epoch", yLabel: title === "Loss" ? "loss" : "value", integerX: true, logToggle: title === "Loss" })
      .update(list.map((name) => ({ name, color: names.indexOf(name), points: history.filter((r) => name in r).map((r) => [r.epoch, r[name]]) })));
  }
}

const compared = document.getElementById("compare-data");
if (compared) {
  const curves = JSON.parse(compared.textContent); // {model: history}
  const models = Object.keys(curves);
  const names = [...new Set(models.flatMap((m) => metricNames(curves[m])))].sort();
  for (const name of names) {
    lineChart(charts, { title: name, xLabel: "epoch", yLabel: name.includes("loss") ? "loss" : "value", integerX: true, logToggle: name.includes("loss") })
      .update(models.map((m, i) => ({ name: m, color: i, points: curves[m].filter((r) => name in r).map((r) => [r.epoch, r[name]]) })));
  }
  if (!names.length) charts.textContent = "These bundles record no per-epoch history.";
}
