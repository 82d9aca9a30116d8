// The endpoints page: the try-it box sends a dropped image to the endpoint (through the console) and draws the
// answer with the task's view next to the raw SageMaker JSON.
for (const box of document.querySelectorAll(".tryit")) {
  const drop = box.querySelector(".drop");
  const input = box.querySelector(".tryit-file");
  const stage = box.querySelector(".tryit-stage");
  const raw = box.querySelector(".tryit-json");
  const classes = JSON.parse(box.dataset.classes);

  async function send(file) {
    const view = await import(`./views/${box.dataset.view}.js`);
    const img = new Image();
    img.src = URL.createObjectURL(file);
    img.alt = file.name;
    const note = document.createElement("p");
    note.className = "small";
    stage.replaceChildren(img);
    raw.textContent = "…";
    const response = await fetch(box.dataset.url, { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    const text = await response.text();
    let answer;
    try { answer = JSON.parse(text); raw.textContent = JSON.stringify(answer, null, 1); } catch { raw.textContent = text; return; }
    if (!response.ok) { note.className = "small error"; note.textContent = answer.message || text; stage.after(note); return; }
    box.querySelector(".tryit-note")?.remove();
    note.classList.add("tryit-note");
    stage.parentElement.insertBefore(note, raw);
    await view.drawAnswer(stage, img, answer, classes, note);
    box.classList.add("answered");
  }

  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
}
