// The new-job form: choosing another algorithm reloads the form for it; "tiny configuration" fills its values.
const pick = document.getElementById("algorithm-pick");
pick.addEventListener("change", () => pick.form.submit());
document.getElementById("choose").hidden = true;
const tiny = document.getElementById("tiny");
tiny.addEventListener("click", () => {
  for (const [name, value] of Object.entries(JSON.parse(tiny.dataset.values))) {
    const field = document.getElementById(`hp-${name}`);
    if (field) field.value = value;
  }
});
