"""``oculi data audit``: what is wrong with a dataset before training — image quality (blurry, dark, bright, low
information, odd size or aspect ratio, grayscale in a colour set), exact and near duplicates within a split and
across splits (leakage), outliers in the model's embedding space, and label issues (the task contract's ``audit``
hook: cleanlab on out-of-fold predictions for classification).

Quality thresholds are relative to the collection, as cleanvision's are: a statistic is flagged when it lies more
than :data:`Z_LIMIT` robust standard deviations (1.4826 × MAD, with a floor per statistic) from the collection's
median on the bad side *and* past an absolute guard, so a collection of dark photos does not flag itself.

Outputs (the user's files are never touched): ``DIR/audit.json`` (every finding: file, manifest line, kind,
score, suggested fix), ``DIR/report.html`` with thumbnails per kind, ``DIR/clean.manifest`` (the training split
without the flagged items; ``clean-<split>.manifest`` for the others)."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oculi.analysis.cache import atomic_write
from oculi.analysis.stats import ImageStats, collect_stats
from oculi.errors import ConfigError, DataError
from oculi.types import Sample, SampleSet

Z_LIMIT = 3.0
NEAR_DUPLICATE_BITS = 8  # perceptual-hash bits that may differ between near duplicates (of 64)
OUTLIER_NEIGHBOURS = 5
KINDS = ("label_issue", "missing_box", "swapped_class", "misplaced_box", "wrong_mask", "leakage", "exact_duplicate",
         "near_duplicate", "outlier", "blurry", "dark", "bright", "low_information", "odd_size", "odd_aspect",
         "grayscale", "unreadable")


@dataclass(frozen=True)
class Item:
    """One audited sample: its split, position in that split and the sample."""

    split: str
    index: int
    sample: Sample

    @property
    def file(self) -> str:
        """The image file."""
        return str(self.sample.image)

    @property
    def line(self) -> int | None:
        """The 1-based manifest/list line the sample came from, when it came from one."""
        tail = self.sample.origin.rpartition(":")[2]
        return int(tail) if tail.isdigit() else None


@dataclass
class AuditFinding:
    """One suspect: ``kind`` (see :data:`KINDS`), ``score`` (higher = surer; comparable within a kind),
    ``fix`` (what to do), ``related`` (the other file of a duplicate pair), ``detail`` (the measured value)."""

    kind: str
    file: str
    split: str
    score: float
    fix: str
    line: int | None = None
    origin: str = ""
    related: str | None = None
    detail: str = ""


@dataclass
class AuditContext:
    """What a label-issue finder (the task contract's ``audit`` hook) gets: the audit folder, ``model`` (a
    bundle, or None to train ``folds`` out-of-fold models), fold ``hyperparameters``, ``seed``, ``progress``
    (bars on stderr) and ``echo`` (a line of news). The finder sets ``label_scores`` (``out_of_fold`` or
    ``in_sample``), ``jobs`` (training jobs it ran) and ``embedding_model`` (a bundle for the outlier check)."""

    output: Path
    model: Path | None = None
    folds: int = 3
    hyperparameters: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    progress: bool = True
    echo: Callable[[str], None] = print
    label_scores: str | None = None
    jobs: list[str] = field(default_factory=list)
    embedding_model: Path | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    """The audit's result: ``findings`` best-first within each kind, ``sets`` the splits read, ``stats`` per
    image, ``notes`` (what was skipped and why), ``seconds``; ``channels`` (absolute paths) and ``reading``
    (``image_roots``, ``label_attribute``) read the same data again (:func:`read_sets`); ``output`` the folder
    its files were written to."""

    task: str
    sets: dict[str, SampleSet]
    findings: list[AuditFinding]
    stats: dict[Path, ImageStats]
    label_scores: str | None
    jobs: list[str]
    notes: list[str]
    seconds: float
    model: str | None = None
    embedding_model: str | None = None
    channels: list[str] = field(default_factory=list)
    reading: dict[str, Any] = field(default_factory=dict)
    output: Path | None = None

    def by_kind(self) -> dict[str, list[AuditFinding]]:
        """Findings grouped by kind, in :data:`KINDS` order, best score first."""
        groups: dict[str, list[AuditFinding]] = defaultdict(list)
        for finding in self.findings:
            groups[finding.kind].append(finding)
        return {k: sorted(groups[k], key=lambda f: -f.score) for k in KINDS if groups.get(k)}

    def flagged(self, kinds: Sequence[str] | None = None) -> set[tuple[str, str]]:
        """``(split, file)`` of every finding (of ``kinds``, default all)."""
        return {(f.split, f.file) for f in self.findings if kinds is None or f.kind in kinds}

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``audit.json``."""
        return {"task": self.task, "model": self.model, "embedding_model": self.embedding_model,
                "label_scores": self.label_scores, "jobs": self.jobs,
                "notes": self.notes, "seconds": round(self.seconds, 2),
                "channels": self.channels, "reading": self.reading,
                "classes": next(iter(self.sets.values())).classes if self.sets else [],
                "images": {split: len(s) for split, s in self.sets.items()},
                "counts": {kind: len(items) for kind, items in self.by_kind().items()},
                "findings": [asdict(f) for kinds in self.by_kind().values() for f in kinds]}


# ---- progress ---------------------------------------------------------------------------------------------------
@contextmanager
def progress_bar(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (when ``enabled``); yields ``advance(n)``."""
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


# ---- reading ----------------------------------------------------------------------------------------------------
def read_sets(channels: Sequence[str | Path], *, task: str = "auto", image_roots: dict[str, Path] | None = None,
              label_attribute: str | None = None) -> tuple[str, dict[str, SampleSet]]:
    """``(task name, {split: SampleSet})`` from one dataset PATH (a folder of splits or one channel) or several
    ``NAME=PATH`` channels (``train`` required; other splits are read against the training classes)."""
    from oculi.data.channels import resolve_classification_channels
    from oculi.data.tasks import DATA_TASKS, recognise

    if not channels:
        raise ConfigError("Nothing to audit: pass a dataset PATH or NAME=PATH channels, e.g. "
                          "`oculi data audit train=data/train validation=data/val`.")
    named = [str(c) for c in channels if "=" in str(c)]
    if named and len(named) != len(channels):
        raise ConfigError("Give one dataset PATH or NAME=PATH channels (train=…, validation=…), not a mix.")
    if not named:
        if len(channels) > 1:
            raise ConfigError(f"{len(channels)} paths given; name each channel: `oculi data audit "
                              f"train={channels[0]} validation={channels[1]}`.")
        path = Path(channels[0])
        if not path.exists():
            raise DataError(f"{path}: not found. Pass a dataset folder, a .lst or a manifest.")
        data_task = recognise(path) if task == "auto" else DATA_TASKS.get(task)
        return data_task.name, data_task.read_splits(path, image_roots=image_roots, num_classes=None,
                                                     label_attribute=label_attribute)
    paths = {}
    for item in named:
        name, _, value = item.partition("=")
        paths[name.strip()] = Path(value).expanduser()
    if "train" not in paths:
        raise ConfigError("no `train` channel; pass train=PATH (e.g. `oculi data audit train=data/train`).")
    if any(name.endswith("_annotation") or name == "label_map" for name in paths):  # SageMaker's mask layout
        root = paths["train"].parent
        if any(path.resolve() != (root / name).resolve() for name, path in paths.items()):
            raise ConfigError("annotation channels are read from their dataset folder: pass the folder that holds "
                              f"train/ and train_annotation/ as one PATH, e.g. `oculi data audit {root}`.")
        return read_sets([root], task=task, image_roots=image_roots, label_attribute=label_attribute)
    data_task = recognise(paths["train"]) if task == "auto" else DATA_TASKS.get(task)
    if data_task.name == "classification":
        return data_task.name, resolve_classification_channels(paths, image_roots=image_roots,
                                                               label_attribute=label_attribute)
    sets = {}
    for name, path in paths.items():
        split = data_task.read_splits(path, image_roots=image_roots, num_classes=None,
                                      label_attribute=label_attribute)["train"]
        if sets and split.classes != sets["train"].classes:
            raise DataError(f"{path}: classes {split.classes} differ from the training channel's "
                            f"{sets['train'].classes}; audit channels labelled with the same classes.")
        sets[name] = split
    return data_task.name, sets


# ---- image quality ----------------------------------------------------------------------------------------------
def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """``(v - median) / max(1.4826 × MAD, floor)``."""
    median = float(np.median(values))
    scale = max(1.4826 * float(np.median(np.abs(values - median))), floor)
    return (values - median) / scale


def quality_findings(items: Sequence[Item], stats: Sequence[ImageStats]) -> list[AuditFinding]:
    """Blurry, dark, bright, low-information, odd size / aspect and grayscale images, relative to the collection
    (see the module docstring). ``stats[i]`` belongs to ``items[i]``."""
    if len(stats) < 5:
        return []
    col = {name: np.array([getattr(s, name) for s in stats], dtype=np.float64)
           for name in ("brightness", "sharpness", "entropy", "colourfulness", "aspect")}
    area = np.log(np.array([s.width * s.height for s in stats], dtype=np.float64))
    # Darkening or flattening a picture lowers the Laplacian's variance too: blur is judged on sharpness per unit
    # of contrast variance, so dark images are not also called blurry.
    relative = col["sharpness"] / np.maximum(np.array([s.contrast for s in stats]) * 255, 1.0) ** 2
    sharp = np.log(relative + 1e-6)
    median_sharp = float(np.median(col["sharpness"]))
    elongation = np.log(np.maximum(col["aspect"], 1 / col["aspect"]))  # portrait and landscape alike
    checks = [  # kind, robust z (bad side positive), absolute guard, detail, fix
        ("blurry", -robust_z(sharp, 0.3), relative < 0.35 * np.median(relative),
         lambda s: f"sharpness {s.sharpness:.0f} (collection median {median_sharp:.0f})",
         "remove it, or keep it only if blurred pictures occur in use"),
        ("dark", -robust_z(col["brightness"], 0.05), col["brightness"] < 0.25,
         lambda s: f"brightness {s.brightness:.2f}", "remove it or correct its exposure"),
        ("bright", robust_z(col["brightness"], 0.05), col["brightness"] > 0.8,
         lambda s: f"brightness {s.brightness:.2f}", "remove it or correct its exposure"),
        ("low_information", -robust_z(col["entropy"], 0.3), col["entropy"] < 4.0,
         lambda s: f"entropy {s.entropy:.2f} bits", "remove it: it holds almost nothing to learn from"),
        ("odd_size", np.abs(robust_z(area, 0.35)), np.abs(area - np.median(area)) > math.log(6),
         lambda s: f"{s.width}×{s.height} px", "check it is the right picture; resize or remove it"),
        ("odd_aspect", robust_z(elongation, 0.15), elongation - np.median(elongation) > math.log(1.8),
         lambda s: f"aspect ratio {s.aspect:.2f}", "check it is not a strip, a banner or a stitched picture"),
    ]
    findings = []
    for kind, z, guard, detail, fix in checks:
        for n in np.flatnonzero((z > Z_LIMIT) & guard):
            findings.append(_finding(items[n], kind, float(z[n]), fix, detail=detail(stats[n])))
    gray = col["colourfulness"] < 0.01
    if np.median(col["colourfulness"]) > 0.04 and gray.mean() < 0.2:
        for n in np.flatnonzero(gray):
            findings.append(_finding(items[n], "grayscale", float(0.04 - col["colourfulness"][n]) * 100,
                                     "a grayscale picture in a colour set: remove it, or add grayscale "
                                     "augmentation if such pictures occur in use",
                                     detail=f"colourfulness {col['colourfulness'][n]:.3f}"))
    return findings


def _finding(item: Item, kind: str, score: float, fix: str, **extra: Any) -> AuditFinding:
    return AuditFinding(kind, item.file, item.split, round(score, 4), fix, item.line, item.sample.origin, **extra)


# ---- duplicates -------------------------------------------------------------------------------------------------
def _split_rank(split: str) -> int:
    return {"train": 0, "validation": 1, "test": 2}.get(split, 3)


def duplicate_findings(items: Sequence[Item], stats: Sequence[ImageStats],
                       max_bits: int = NEAR_DUPLICATE_BITS) -> list[AuditFinding]:
    """Exact (same bytes) and near (perceptual hashes within ``max_bits``) duplicates. Across splits the copy in
    the later split (validation, test) is flagged as ``leakage``; within a split every copy after the first is
    flagged. The score is 64 − differing bits (exact: 65)."""
    hashes = np.array([int(s.phash, 16) for s in stats], dtype=np.uint64)
    order = sorted(range(len(items)), key=lambda n: (_split_rank(items[n].split), items[n].file))
    kept: dict[int, AuditFinding] = {}
    for pos in range(0, len(order), 1024):
        rows = np.array(order[pos:pos + 1024])
        earlier = np.array(order[:pos + 1024])
        bits = np.bitwise_count(hashes[rows][:, None] ^ hashes[earlier][None, :])
        for r, n in enumerate(rows):
            candidates = np.flatnonzero(bits[r, :pos + r] <= max_bits)
            if not len(candidates):
                continue
            exact = [earlier[c] for c in candidates if stats[earlier[c]].sha1 == stats[n].sha1]
            m = int(exact[0]) if exact else int(earlier[candidates[np.argmin(bits[r, candidates])]])
            distance = 0 if exact else int(bits[r, np.flatnonzero(earlier == m)[0]])
            other, item = items[m], items[n]
            if other.split != item.split:
                kind, fix = "leakage", (f"the same picture is in {other.split} (related): remove it from "
                                        f"{item.split}, or the {item.split} score is inflated")
            elif exact:
                kind, fix = "exact_duplicate", "identical to the related file: keep one"
            else:
                kind, fix = "near_duplicate", "a resized/re-encoded/cropped copy of the related file: keep one"
            kept[n] = _finding(item, kind, 65.0 if exact else 64.0 - distance, fix, related=other.file,
                               detail="identical bytes" if exact else f"{distance} of 64 hash bits differ")
    return list(kept.values())


# ---- embeddings -------------------------------------------------------------------------------------------------
def outlier_findings(items: Sequence[Item], vectors: np.ndarray, neighbours: int = OUTLIER_NEIGHBOURS,
                     exclude: set[int] | None = None) -> list[AuditFinding]:
    """Items far from everything in embedding space: mean cosine distance to the ``neighbours`` nearest other
    items (duplicates in ``exclude`` left out of the reference set), flagged past :data:`Z_LIMIT` robust
    standard deviations above the median."""
    import torch

    from oculi.analysis.index import exact_search

    keep = np.array([n for n in range(len(items)) if n not in (exclude or set())])
    if len(keep) <= neighbours + 5:
        return []
    reference = torch.from_numpy(vectors[keep])
    scores, indices = exact_search(reference, torch.from_numpy(vectors), neighbours + 1)
    own = keep[indices] == np.arange(len(items))[:, None]
    distance = np.array([float(np.mean(1 - s[~o][:neighbours])) for s, o in zip(scores, own, strict=True)])
    z = robust_z(distance, 0.01)
    return [_finding(items[n], "outlier", float(z[n]), "far from every other image: check it belongs in the "
                     "dataset (another domain, a wrong file, a rare case that needs more examples)",
                     detail=f"mean cosine distance {distance[n]:.3f} to its {neighbours} nearest")
            for n in np.flatnonzero(z > Z_LIMIT)]


def embed_items(model: Path, items: Sequence[Item], progress: bool) -> np.ndarray:
    """Whole-image embeddings of ``items`` with ``model``'s backbone (``float32 [N, D]``, cached)."""
    from oculi.analysis.embeddings import Embedder

    embedder = Embedder.from_bundle(model)
    with progress_bar("embedding", len(items), progress) as advance:
        return embedder.embed_items([(Path(i.file), None) for i in items], advance=advance)


# ---- the audit --------------------------------------------------------------------------------------------------
def audit(channels: Sequence[str | Path], output: Path, *, task: str = "auto", model: Path | None = None,
          folds: int = 3, hyperparameters: dict[str, str] | None = None, seed: int = 0, labels: bool = True,
          image_roots: dict[str, Path] | None = None, label_attribute: str | None = None, workers: int = 2,
          progress: bool = True, echo: Callable[[str], None] = print) -> AuditReport:
    """Audit a dataset (see the module docstring) and write ``audit.json``, ``report.html`` and the clean
    manifests to ``output``. ``model``: a bundle of the data's task for embeddings and (in-sample) label scores;
    without it, the task's label-issue finder trains ``folds`` short seeded jobs for out-of-fold predictions
    (``hyperparameters`` override their defaults). ``labels=False`` skips label issues. Nothing outside
    ``output`` is written (besides the jobs' own folders and the analysis cache)."""
    from oculi.tasks import get_task

    start = time.perf_counter()
    if folds < 2:
        raise ConfigError(f"--folds got {folds}; expected an integer ≥ 2 (e.g. --folds 3).")
    output = Path(output)
    channels = [_absolute(c) for c in channels]  # findings name absolute files: audit.json is read from anywhere
    task_name, sets = read_sets(channels, task=task, image_roots=image_roots, label_attribute=label_attribute)
    contract = get_task(task_name)
    every = [Item(split, n, s) for split, ss in sets.items() for n, s in enumerate(ss.samples)]
    if not every:
        raise DataError(f"{channels[0]}: no images to audit.")
    output.mkdir(parents=True, exist_ok=True)
    with progress_bar("image statistics", len({i.sample.image for i in every}), progress) as advance:
        measured = collect_stats([i.sample.image for i in every], workers=workers, advance=advance)
    findings: list[AuditFinding] = []
    items: list[Item] = []
    for item in every:
        result = measured[item.sample.image]
        if isinstance(result, ImageStats):
            items.append(item)
        else:
            findings.append(_finding(item, "unreadable", 1.0, "fix or remove the file", detail=str(result)))
    stats = [measured[i.sample.image] for i in items]  # type: ignore[misc]
    findings += quality_findings(items, stats)
    duplicates = duplicate_findings(items, stats)
    findings += duplicates
    context = AuditContext(output, model, folds, dict(hyperparameters or {}), seed, progress, echo)
    if labels and contract.audit is not None:
        readable = {split: ss.with_samples([i.sample for i in items if i.split == split])
                    for split, ss in sets.items()}
        findings += contract.audit(readable, context)
    elif labels:
        context.notes.append(f"label issues are not checked for {contract.title} data yet")
    embedding_model = model or context.embedding_model
    if embedding_model is not None:
        vectors = embed_items(Path(embedding_model), items, progress)
        dup_index = {(i.split, i.file) for i in items} & {(f.split, f.file) for f in duplicates}
        exclude = {n for n, i in enumerate(items) if (i.split, i.file) in dup_index}
        findings += outlier_findings(items, vectors, exclude=exclude)
    else:
        context.notes.append("outliers need embeddings: pass --model BUNDLE (or let the label step train its fold "
                             "models)")
    report = AuditReport(task_name, sets, findings, dict(zip((i.sample.image for i in items), stats, strict=True)),
                         context.label_scores, context.jobs, context.notes, time.perf_counter() - start,
                         str(model) if model else None, str(embedding_model) if embedding_model else None,
                         list(channels),
                         {"image_roots": {k: str(Path(v).resolve()) for k, v in (image_roots or {}).items()},
                          "label_attribute": label_attribute}, output.resolve())
    write_outputs(report, output, contract)
    return report


def _absolute(channel: str | Path) -> str:
    """A channel as given (``PATH`` or ``NAME=PATH``) with its path made absolute."""
    name, sep, value = str(channel).partition("=") if "=" in str(channel) else ("", "", str(channel))
    return f"{name}{sep}{Path(value).expanduser().resolve()}"


def write_outputs(report: AuditReport, output: Path, contract: Any) -> None:
    """``audit.json``, ``report.html`` (with thumbnails) and the clean manifests, each renamed into place."""
    from oculi.analysis.report import write_audit_html

    atomic_write(output / "audit.json", json.dumps(report.to_dict(), indent=1, ensure_ascii=False).encode())
    flagged = report.flagged()
    if contract.write_manifest is not None:
        for split, sample_set in report.sets.items():
            clean = sample_set.with_samples([s for s in sample_set.samples if (split, str(s.image)) not in flagged])
            name = "clean.manifest" if split == "train" else f"clean-{split}.manifest"
            tmp = output / f".{name}.tmp"
            contract.write_manifest(clean, tmp)
            tmp.replace(output / name)
    write_audit_html(report, output)
