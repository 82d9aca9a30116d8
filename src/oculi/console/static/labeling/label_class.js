// Classification: the image large, a class per number key (single-label: save and go on; multi-label: toggle and
// save), the model's or the input's proposal pre-selected; the next image is leased and fetched ahead.
import { Session, Stage, classButtons, classKey, header, imageUrl, markClass, navigation, root, saveLabel, status } from "./common.js";

const multi = root.dataset.multi === "true";
const stage = new Stage(document.getElementById("viewport"), document.getElementById("stage"), document.getElementById("image"));
let chosen = [];

const session = new Session(async (item) => {
  header(item);
  if (!item) return;
  const proposed = item.state === "unlabeled" && item.proposal ? item.proposal.classes || [] : [];
  chosen = item.label ? [...item.label.classes] : [];
  markClass(chosen, proposed);
  status(item.state === "unlabeled" ? "" : `labeled (${item.state})`);
  await stage.open(imageUrl(item.idx));
  document.getElementById("viewport").focus({ preventScroll: true });
});

async function save(classes) {
  const item = session.item;
  if (!item || !classes.length) return;
  const label = { classes: [...classes].sort((a, b) => a - b) };
  await saveLabel(item.idx, label);
  session.markSaved(label);
}

async function pick(i) {
  if (!session.item) return;
  if (multi) {
    chosen = chosen.includes(i) ? chosen.filter((c) => c !== i) : [...chosen, i];
    markClass(chosen);
    await save(chosen);
  } else {
    chosen = [i];
    markClass(chosen);
    await save(chosen);
    await session.next();
  }
}

classButtons(pick);
navigation(session);
document.getElementById("accept").addEventListener("click", () => accept());

async function accept() {
  const p = session.item && session.item.proposal;
  if (!p || !p.classes) return;
  chosen = [...p.classes];
  markClass(chosen);
  await save(chosen);
  await session.next();
}

document.addEventListener("keydown", async (e) => {
  if (e.target.closest("input[type=text], textarea, select")) return;
  const i = classKey(e);
  if (i !== null) { e.preventDefault(); await pick(i); return; }
  if (e.key === "a" || e.key === "A") { e.preventDefault(); await accept(); }
  if (e.key === "Enter" && multi) { e.preventDefault(); await session.next(); }
});

session.start();
