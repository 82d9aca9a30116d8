// The job page: metric curves and the log tail, kept live through the job's event stream (server-sent events).
import { lineChart, panels } from "./chart.js";

const root = document.getElementById("job");
const rows = JSON.parse(document.getElementById("metrics-data").textContent); // [id, epoch, step, name, value]
const charts = document.getElementById("charts");
const log = document.getElementById("log");
const follow = document.getElementById("follow");
const drawn = new Map(); // panel title -> chart

function x(row) { return row[1] ?? (row[2] ?? 0) + 1; }

function redraw() {
  if (!rows.length) return;
  document.getElementById("no-metrics")?.remove();
  const byName = new Map();
  for (const row of rows) {
    if (!byName.has(row[3])) byName.set(row[3], new Map());
    byName.get(row[3]).set(x(row), row[4]); // a resumed epoch replaces the earlier value
  }
  const names = [...byName.keys()].sort();
  const xLabel = rows.every((r) => r[1] !== null) ? "epoch" : "value number";
  for (const [title, list] of panels(names)) {
    if (!drawn.has(title)) drawn.set(title, lineChart(charts, { title, xLabel, yLabel: title === "Loss" ? "loss" : "value", integerX: true, logToggle: title === "Loss" }));
    drawn.get(title).update(list.map((name) => ({ name, color: names.indexOf(name), points: [...byName.get(name)].sort((a, b) => a[0] - b[0]) })));
  }
  charts.dataset.points = String(rows.length);
  charts.dataset.last = String(rows[rows.length - 1][0]); // the newest row shown (tests time its arrival)
}

function appendLog(text) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(text);
  if (follow.checked && atBottom) log.scrollTop = log.scrollHeight;
}

redraw();
log.scrollTop = log.scrollHeight;

const url = `/jobs/${encodeURIComponent(root.dataset.name)}/events?after=${root.dataset.after}&log=${root.dataset.log}`;
const events = new EventSource(url);
events.addEventListener("metrics", (e) => { rows.push(...JSON.parse(e.data)); redraw(); });
events.addEventListener("log", (e) => appendLog(JSON.parse(e.data)));
events.addEventListener("status", (e) => {
  const s = JSON.parse(e.data);
  const badge = document.getElementById("status");
  badge.textContent = s.status;
  badge.className = `badge ${s.status}`;
  document.getElementById("secondary").textContent = s.secondary;
  document.getElementById("duration").textContent = s.duration ? `· ${s.duration}` : "";
  // the buttons and the timeline are the server's: reload once the job has ended (or changed while shown ended)
  if (s.terminal !== (root.dataset.terminal === "true")) { events.close(); window.location.reload(); }
});
events.addEventListener("end", () => events.close());
