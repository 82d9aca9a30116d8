"""Labeling jobs, shaped like Ground Truth's CreateLabelingJob / DescribeLabelingJob, recorded in the job store
(:mod:`oculi.jobs.store`: ``labeling_jobs`` + one ``labeling_items`` row per image).

The item queue hands each unlabeled image to one person at a time: a lease (``LEASE_SECONDS``) taken with a
compare-and-set update, so two browsers never get the same image and a reload gets back the image it held. Each
label is saved as it is made (autosave). The output is written as Ground Truth writes it:
``OUTPUT/manifests/output/output.manifest`` (OUTPUT = ``<output path>/<job name>``), one JSON line per labeled image
— the input line plus the label attribute and ``<attribute>-metadata`` (:mod:`oculi.labeling.kinds`) — and mask
PNGs under ``OUTPUT/annotations/``. ``oculi train`` reads that manifest as it is."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError, DataError, JobError, OculiError
from oculi.jobs.store import JobStore, check_name, iso
from oculi.labeling.kinds import KINDS, AnnotationKind
from oculi.settings import oculi_home
from oculi.types import IMAGE_EXTENSIONS

IN_PROGRESS, COMPLETED, STOPPING, STOPPED, FAILED = "InProgress", "Completed", "Stopping", "Stopped", "Failed"
STATUSES = (IN_PROGRESS, COMPLETED, STOPPING, STOPPED, FAILED)
LEASE_SECONDS = 15 * 60
BACKGROUND = "BACKGROUND"


def default_output() -> Path:
    """Where labeling jobs write by default: ``$OCULI_HOME/labeling``."""
    return oculi_home() / "labeling"


def output_dir(job: dict[str, Any]) -> Path:
    """OUTPUT: ``<output path>/<job name>`` (Ground Truth's layout under ``S3OutputPath``)."""
    return Path(job["spec"]["output"]) / job["name"]


def output_manifest(job: dict[str, Any]) -> Path:
    """``OUTPUT/manifests/output/output.manifest``."""
    return output_dir(job) / "manifests" / "output" / "output.manifest"


def kind_of(job: dict[str, Any]) -> AnnotationKind:
    """The annotation kind of the job's task."""
    from oculi.tasks import get_task

    return KINDS.get(get_task(job["task"]).annotation_kind)


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _manifest_lines(path: Path) -> list[dict[str, Any]]:
    from oculi.data.formats.manifest import IMAGE_ATTRIBUTES, _resolve

    lines = []
    for number, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as e:
            raise DataError(f"{path}:{number}: not a JSON line ({e.msg}); each line is {{\"source-ref\": "
                            "\"<image>\", …}.") from None
        ref = next((record[k] for k in IMAGE_ATTRIBUTES if isinstance(record.get(k), str)), None)
        if ref is None:
            raise DataError(f"{path}:{number}: no \"source-ref\"; each line names its image in \"source-ref\".")
        image, fix = _resolve(ref, path.parent, {})
        if image is None:
            raise DataError(f"{path}:{number}: image {ref} not found; {fix}")
        lines.append({"line": record, "image": str(image)})
    return lines


def _names_images(path: Path) -> bool:
    """Whether the JSON-lines file ``path`` names its images in ``source-ref`` (not e.g. a one-line COCO file)."""
    from oculi.data.formats.manifest import IMAGE_ATTRIBUTES

    with path.open(encoding="utf-8-sig") as f:
        first = next((line for line in f if line.strip()), "{}")
    try:
        return any(k in json.loads(first) for k in IMAGE_ATTRIBUTES)
    except ValueError:
        return False


def read_input(path: Path, task: str, categories: list[str]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The items of a new job and their pre-labels from ``path``: a folder of images (recursively), an input
    manifest (``source-ref`` lines; labels already on the lines become pre-labels), or any labelled dataset the
    data layer reads for the task (COCO, VOC, YOLO, class folders … and, through the task's ``read_splits``, every
    format registered there later, e.g. Label Studio / CVAT / labelme / VIA): its labels become pre-labels.

    Returns ``([{"line": input line, "image": local path}], [pre-label or None per item])``."""
    from oculi.data.formats.manifest import is_manifest
    from oculi.tasks import get_task

    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DataError(f"--input {path} does not exist; give a folder of images or an input manifest.")
    if path.is_dir() and not any(p.is_dir() for p in path.iterdir()):
        images = _images_under(path)
        if not images:
            raise DataError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS[:4])} …) in this folder.")
        return [{"line": {"source-ref": str(p)}, "image": str(p)} for p in images], [None] * len(images)
    sources = _manifest_lines(path) if is_manifest(path) and _names_images(path) else None
    kind = KINDS.get(get_task(task).annotation_kind)
    labels: dict[str, Any] = {}
    try:  # labelled data: the task's readers (the plug-in point for every format the data layer reads)
        for sample_set in get_task(task).data.read_splits(path).values():
            for sample in sample_set.samples:
                if kind.from_target is not None and sample.target is not None:
                    labels[str(sample.image.resolve())] = kind.from_target(sample.target, sample_set.classes,
                                                                          categories)
                if sources is None or path.is_dir():
                    labels.setdefault(str(sample.image.resolve()), None)
    except OculiError:
        if sources is None and not path.is_dir():
            raise
    if sources is None:
        images = sorted(labels) if labels else _images_under(path) if path.is_dir() else []
        if not images:
            raise DataError(f"{path}: no images found; give a folder of images or an input manifest.")
        sources = [{"line": {"source-ref": str(p)}, "image": str(p)} for p in images]
    return sources, [labels.get(str(Path(s["image"]).resolve())) for s in sources]


def categories(task: str, classes: list[str] | str) -> list[str]:
    """A job's label categories from ``classes`` (list or comma-separated), checked; segmentation's get
    ``BACKGROUND`` first (see :func:`create`)."""
    from oculi.tasks import get_task

    names = [c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes) if c.strip()]
    if not names:
        raise ConfigError("--classes is empty; name the label categories, e.g. --classes bee,wasp.")
    if len(set(names)) != len(names):
        raise ConfigError(f"--classes repeats a name ({', '.join(names)}); each category once.")
    if KINDS.get(get_task(task).annotation_kind).attribute_suffix == "-ref" and \
            names[0].lower().strip("_") not in ("background", "0"):
        names = [BACKGROUND, *names]  # Ground Truth's semantic segmentation: class 0 is the unpainted background
    if len(names) > 255:
        raise ConfigError(f"--classes names {len(names)} categories; at most 255.")
    return names


def create(name: str, task: str, input: str | Path, classes: list[str] | str, *,  # noqa: A002 - Ground Truth's
           multi_label: bool = False, instructions: str | Path | None = None, output: str | Path | None = None,
           label_attribute: str | None = None, store: JobStore | None = None) -> dict[str, Any]:
    """Record labeling job ``name`` (CreateLabelingJob): ``task`` (classification, detection, segmentation),
    ``input`` (folder of images, input manifest or a labelled dataset: its labels become pre-labels), ``classes``
    (the label categories, list or comma-separated), ``multi_label`` (classification), ``instructions`` (text or
    a file), ``output`` (default ``$OCULI_HOME/labeling``), ``label_attribute`` (default the job name; ends in
    ``-ref`` for segmentation, as Ground Truth requires). Segmentation classes get ``BACKGROUND`` first (class 0,
    what is left unpainted) unless the first one already is the background (``background``, ``_background_``,
    ``0``). Returns the store row."""
    from oculi.tasks import get_task

    check_name(name)
    contract = get_task(task)
    kind = KINDS.get(contract.annotation_kind)
    if multi_label and kind.name != "class":
        raise ConfigError(f"--multi-label applies to classification jobs; this is a {task} job. Leave it out.")
    names = categories(task, classes)
    attribute = label_attribute or name
    if kind.attribute_suffix and not attribute.endswith(kind.attribute_suffix):
        attribute += kind.attribute_suffix
    if instructions is not None and Path(str(instructions)).is_file():
        instructions = Path(str(instructions)).read_text(encoding="utf-8")
    sources, proposals = read_input(Path(input), contract.name, names)
    store = store or JobStore()
    out = Path(output or default_output()).expanduser().resolve()
    spec = {"input": str(Path(input).expanduser().resolve()), "output": str(out), "categories": names,
            "multi_label": multi_label, "instructions": str(instructions or ""), "pre_labels": sum(
                p is not None for p in proposals)}
    masks = _mask_values(proposals)
    job = store.create_labeling({"name": name, "task": contract.name, "label_attribute": attribute, "spec": spec},
                                sources, proposals)
    _save_proposal_masks(job, masks, 0)
    manifest = output_dir(job) / "manifests" / "input" / "input.manifest"
    _write_lines(manifest, [s["line"] for s in sources])
    store.update_labeling(name, spec={**spec, "input_manifest": str(manifest)})
    return store.labeling_job(name)


def _mask_values(proposals: list[Any]) -> dict[int, Any]:
    """Take the class-index arrays out of mask pre-labels (``"values"``, see ``from_mask_target``): ``{position:
    uint8 [H, W]}``; the pre-labels keep the JSON part the store holds."""
    return {i: p.pop("values") for i, p in enumerate(proposals) if isinstance(p, dict) and "values" in p}


def _save_proposal_masks(job: dict[str, Any], masks: dict[int, Any], first: int) -> None:
    """Write mask pre-labels as the proposal PNGs the annotation page loads (item ``first + position``)."""
    from oculi.labeling.masks import proposal_path, save_mask

    for position, values in masks.items():
        save_mask(values, proposal_path(output_dir(job), first + position), len(job["spec"]["categories"]))


def add_items(name: str, input: str | Path, store: JobStore | None = None) -> int:  # noqa: A002 - as create's
    """Append to labeling job ``name`` the images of ``input`` (read as :func:`create` reads it, labels becoming
    pre-labels) that the job does not hold yet; the job's input manifest grows with them. A Completed job that
    gets new items is InProgress again; a Stopped or Failed one is a JobError (its labels can no longer change).
    Returns how many items were added."""
    store = store or JobStore()
    job = store.labeling_job(name)
    if job["status"] not in (IN_PROGRESS, COMPLETED):
        raise JobError(f"Labeling job {name!r} is {job['status']}; items can be added only while it is InProgress "
                       "or Completed. Send them to a new job instead.")
    sources, proposals = read_input(Path(input), job["task"], job["spec"]["categories"])
    held = {str(Path(item["source"]["image"]).resolve()) for item in store.labeling_items(name)}
    new = [(s, p) for s, p in zip(sources, proposals, strict=True) if str(Path(s["image"]).resolve()) not in held]
    new = list({str(Path(s["image"]).resolve()): (s, p) for s, p in new}.values())  # an image once
    if not new:
        return 0
    masks = _mask_values([p for _, p in new])
    first = store.add_labeling_items(name, [s for s, _ in new], [p for _, p in new])
    _save_proposal_masks(job, masks, first)
    spec = job["spec"]
    manifest = Path(spec.get("input_manifest") or output_dir(job) / "manifests" / "input" / "input.manifest")
    _write_lines(manifest, [item["source"]["line"] for item in store.labeling_items(name)])
    store.update_labeling(name, status=IN_PROGRESS, spec={**spec, "input_manifest": str(manifest),
                                                          "pre_labels": spec.get("pre_labels", 0) + sum(
                                                              p is not None for _, p in new)})
    return len(new)


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".manifest", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def counters(store: JobStore, name: str) -> dict[str, int]:
    """Ground Truth's ``LabelCounters`` of job ``name``."""
    counts = store.label_counts(name)
    human, machine = counts.get("human", 0), counts.get("machine", 0)
    return {"TotalLabeled": human + machine, "HumanLabeled": human, "MachineLabeled": machine,
            "FailedNonRetryableError": counts.get("failed", 0), "Unlabeled": counts.get("unlabeled", 0)}


def describe(name: str, store: JobStore | None = None) -> dict[str, Any]:
    """DescribeLabelingJob's answer for job ``name`` (local paths where Ground Truth has S3 URIs)."""
    store = store or JobStore()
    job = store.labeling_job(name)
    spec = job["spec"]
    described: dict[str, Any] = {
        "LabelingJobName": name, "LabelingJobArn": f"arn:oculi:local:labeling-job/{name}",
        "LabelingJobStatus": job["status"], "LabelCounters": counters(store, name),
        "CreationTime": iso(job["created_at"]), "LastModifiedTime": iso(job["updated_at"]),
        "LabelAttributeName": job["label_attribute"], "Task": job["task"],
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": spec.get("input_manifest", spec["input"])}}},
        "OutputConfig": {"S3OutputPath": spec["output"]},
        "LabelCategoryConfig": {"document-version": "2018-11-28",
                                "labels": [{"label": c} for c in spec["categories"]]},
        "HumanTaskConfig": {"TaskTitle": name, "TaskDescription": spec.get("instructions", ""),
                            "NumberOfHumanWorkersPerDataObject": 1,
                            "TaskKeywords": ["multi-label"] if spec.get("multi_label") else []},
        "LabelingJobOutput": {"OutputDatasetS3Uri": str(output_manifest(job))},
    }
    rounds = (job["stats"] or {}).get("rounds", [])
    if rounds:
        described["LabelingJobAlgorithmsConfig"] = {"LabelingJobAlgorithmSpecificationArn": rounds[-1]["algorithm"],
                                                    "AutoLabelAccuracy": rounds[-1]["target"]}
        described["LabelingJobOutput"]["FinalActiveLearningModelArn"] = rounds[-1]["model"]
        described["AutomatedLabeling"] = rounds
    if job["failure_reason"]:
        described["FailureReason"] = job["failure_reason"]
    return described


def list_jobs(store: JobStore | None = None) -> list[dict[str, Any]]:
    """ListLabelingJobs: a summary per job, newest first."""
    store = store or JobStore()
    return [{"LabelingJobName": j["name"], "LabelingJobStatus": j["status"], "Task": j["task"],
             "CreationTime": iso(j["created_at"]), "LabelCounters": counters(store, j["name"])}
            for j in store.labeling_jobs()]


def labeling_job_open(store: JobStore, name: str) -> dict[str, Any]:
    """Job ``name``'s row if it is InProgress, else a JobError (its labels can no longer change)."""
    job = store.labeling_job(name)
    if job["status"] != IN_PROGRESS:
        raise JobError(f"Labeling job {name!r} is {job['status']}; labels can be changed only while it is "
                       "InProgress. Create a new job (its output manifest can be the input) to go on.")
    return job


def next_item(name: str, worker: str, exclude: tuple[int, ...] = (), store: JobStore | None = None,
              lease_seconds: float = LEASE_SECONDS) -> dict[str, Any] | None:
    """Lease the next unlabeled item of job ``name`` to ``worker`` (the image it already holds first, then by
    uncertainty, then input order); None when no unlabeled item is free or the job is no longer InProgress. A
    job whose items are all labeled is Completed and its output written."""
    store = store or JobStore()
    if store.labeling_job(name)["status"] != IN_PROGRESS:
        return None
    item = store.lease_item(name, worker, lease_seconds, exclude)
    if item is None and not store.label_counts(name).get("unlabeled"):
        store.update_labeling(name, status=COMPLETED)
        export(name, store=store)
    return item


def save_label(name: str, idx: int, label: Any, worker: str, *, mask: Any = None,
               store: JobStore | None = None) -> dict[str, Any]:
    """Save a person's ``label`` of item ``idx`` (autosave; ``mask``: the class-index ``uint8 [H, W]`` array of a
    segmentation label, written as the item's indexed PNG). Returns the saved item."""
    from oculi.labeling.masks import mask_path, save_mask

    store = store or JobStore()
    job = labeling_job_open(store, name)
    item = store.labeling_item(name, idx)
    kind = kind_of(job)
    clean = kind.check(label, job["spec"]["categories"], bool(job["spec"].get("multi_label")))
    if kind.attribute_suffix == "-ref":
        if mask is None or tuple(mask.shape) != (clean["height"], clean["width"]):
            raise DataError(f"item {idx}: the mask must be {clean['width']}×{clean['height']} pixels, the image's "
                            "size.")
        save_mask(mask, mask_path(output_dir(job), idx), len(job["spec"]["categories"]))
    store.set_label(name, idx, clean, "human", confidence=0.0, worker=worker)
    return {**item, "label": clean, "state": "human"}


def stop(name: str, store: JobStore | None = None) -> dict[str, Any]:
    """StopLabelingJob: InProgress → Stopping → Stopped; the labels made so far are written to the output."""
    store = store or JobStore()
    job = store.labeling_job(name)
    if job["status"] != IN_PROGRESS:
        raise JobError(f"Labeling job {name!r} is {job['status']}; only an InProgress job can be stopped.")
    store.update_labeling(name, status=STOPPING)
    export(name, store=store)
    store.update_labeling(name, status=STOPPED)
    return store.labeling_job(name)


def output_lines(job: dict[str, Any], store: JobStore) -> list[dict[str, Any]]:
    """The output manifest's lines: every labeled item (human or machine), in input order."""
    kind, out = kind_of(job), output_dir(job)
    return [{**item["source"]["line"], **kind.line(item, job, out)}
            for item in store.labeling_items(job["name"], ("human", "machine"))]


def write_manifest(path: Path, items: list[dict[str, Any]], job: dict[str, Any], *, local: bool = False) -> Path:
    """Write ``items``' output lines (Ground Truth's shape) to the manifest ``path``; ``local``: with
    ``source-ref`` replaced by the local image file it was resolved to (for training on this machine)."""
    kind, out = kind_of(job), output_dir(job)
    lines = []
    for item in items:
        line = {**item["source"]["line"], **kind.line(item, job, out)}
        if local:
            line = {("source-ref" if k == "image-ref" else k): v for k, v in line.items()}
            line["source-ref"] = item["source"]["image"]
        lines.append(line)
    return _write_lines(path, lines)


def export(name: str, to: str | Path | None = None, store: JobStore | None = None) -> Path:
    """Write ``OUTPUT/manifests/output/output.manifest`` (and a copy at ``to`` when given); returns its path."""
    store = store or JobStore()
    job = store.labeling_job(name)
    lines = output_lines(job, store)
    path = _write_lines(output_manifest(job), lines)
    if to is not None:
        _write_lines(Path(to).expanduser().resolve(), lines)
        return Path(to).expanduser().resolve()
    return path


def item_view(job: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """What an annotation page needs of an item: index, state, label, pre-label, image file name."""
    return {"idx": item["idx"], "state": item["state"], "label": item["label"], "proposal": item["proposal"],
            "confidence": item["confidence"], "file": Path(item["source"]["image"]).name}
