// The endpoints page: the try-it box sends a dropped image to the endpoint (through the console) and draws the
// answer with the task's view next to the raw SageMaker JSON.
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
  }

  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
}

// a server started from this page is loading its model: look again until it answers (or has died)
if (document.querySelector(".launch-state.starting")) setTimeout(() => location.reload(), 2000);
