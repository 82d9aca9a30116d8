// The endpoints page: the try-it box sends a dropped image to the endpoint (through the console) and draws the
// answer with the task's view next to the raw SageMaker JSON; a button then asks the endpoint for its heat maps.
for (const box of document.querySelectorAll(".tryit")) {
  const drop = box.querySelector(".drop");
  const input = box.querySelector(".tryit-file");
  const stage = box.querySelector(".tryit-stage");
  const raw = box.querySelector(".tryit-json");
  const classes = JSON.parse(box.dataset.classes);
  const min = box.querySelector(".tryit-min");
  let last = null; // {view, img, answer, note}: redrawn when the threshold changes

  async function draw() {
    if (!last) return;
    await last.view.drawAnswer(stage, last.img, last.answer, classes, last.note, Number(min.value));
    box.classList.add("answered");
  }
  min.addEventListener("input", () => { box.querySelector(".tryit-min-value").textContent = Number(min.value).toFixed(2); draw(); });

  async function send(file) {
    const view = await import(`./views/${box.dataset.view}.js`);
    const img = new Image();
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
    const note = box.querySelector(".tryit-note");
    note.textContent = "";
    note.className = "small tryit-note";
    stage.replaceChildren(img);
    raw.textContent = "…";
    const response = await fetch(box.dataset.url, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    const text = await response.text();
    let answer;
    try { answer = JSON.parse(text); } catch { raw.textContent = text; return; }
    // one line per innermost array (a box, a probability list), indented objects around them
    raw.textContent = JSON.stringify(answer, null, 1).replace(/\[\s+([^[\]{}]*?)\s+\]/g, (_, inner) => `[${inner.replace(/\s+/g, " ")}]`);
    if (!response.ok) { note.classList.add("error"); note.textContent = answer.message || text; return; }
    last = { view, img, answer, note };
    await draw();
    offerExplanation(file);
  }

  // heat maps on request: an explanation runs the model several times in float32 (seconds for a detector)
  function offerExplanation(file) {
    let button = box.querySelector(".tryit-explain-button");
    if (!button) {
      button = Object.assign(document.createElement("button"), { type: "button", className: "tryit-explain-button", textContent: "Show heat maps (Grad-CAM)" });
      box.append(button);
    }
    box.querySelector(".tryit-explain")?.replaceChildren();
    button.onclick = () => explain(file);
  }

  async function explain(file) {
    let out = box.querySelector(".tryit-explain");
    if (!out) { out = document.createElement("div"); out.className = "imagegrid tryit-explain"; box.append(out); }
    const say = (text, cls) => out.replaceChildren(Object.assign(document.createElement("p"), { className: `small ${cls}`, textContent: text }));
    say("Explaining (Grad-CAM, float32)…", "muted");
    const response = await fetch(box.dataset.url.replace(/invoke$/, `explain?min_score=${min.value}`), { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    let answer;
    try { answer = await response.json(); } catch { answer = { message: response.statusText }; }
    if (!response.ok) { say(`No explanation: ${answer.message}`, "error"); return; }
    const found = answer.explanation.explanations;
    if (!found.length) { say("Nothing to explain above the lowest score.", "muted"); return; }
    out.replaceChildren(...found.map((e) => {
      const figure = document.createElement("figure");
      const img = Object.assign(document.createElement("img"), { src: `data:image/png;base64,${e.overlay_png_base64}`, alt: `heat map of ${e.target.class}` });
      const caption = Object.assign(document.createElement("figcaption"), { className: "small", textContent: `${e.target.class} · faithfulness ${e.faithfulness.score}` });
      caption.title = "How much more the score falls when the map's most salient pixels are removed than random ones (above 0: the map points at what the model uses)";
      figure.style.margin = "0";
      img.style.width = "100%";
      figure.append(img, caption);
      return figure;
    }));
  }

  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
}

// a server started from this page is loading its model: look again until it answers (or has died)
if (document.querySelector(".launch-state.starting")) setTimeout(() => location.reload(), 2000);
