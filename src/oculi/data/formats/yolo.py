"""YOLO txt labels: one ``<image stem>.txt`` per image, one ``class cx cy w h`` line per box, the centre and size
normalised by the image width and height (0–1). A box becomes ``xyxy`` pixels ``((cx - w/2)·W, (cy - h/2)·H,
(cx + w/2)·W, (cy + h/2)·H)``, so reading needs each image's size (read from the image header).

Layouts: ``<root>/labels/<sub>/<stem>.txt`` ↔ ``<root>/images/<sub>/<stem>.<ext>`` (also ``<root>/../images/<sub>``,
as in coco128's ``object_detection/labels/train2017``), Roboflow's ``<root>/<split>/labels`` ↔ ``<root>/<split>/images``
(``train``, ``valid``, ``test``), or labels beside their images. The splits are the data YAML's ``train:`` /
``val:`` / ``test:`` folders, resolved as Ultralytics does (see :func:`yaml_split_folders`); ``README*.txt`` files
(Roboflow writes them) are not labels. Class names come from, in
order: the ``names`` argument (a YAML file with ``names:``, or a text file with one name per line), a data YAML
in the root (``data.yaml``, ``config.yaml``, …; ``names:`` a list or an ``{id: name}`` dict), or ``classes.txt``.
YOLO has no ``difficult`` flag and no place for an image path: the writer reports each ``difficult`` box it
cannot keep, and links (or copies) the images into ``<out>/images``."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from oculi.data.formats.boxes import (
    beyond_num_classes,
    clean_box,
    copy_image,
    find_image,
    image_size,
    target_size,
    unique_stems,
)
from oculi.data.formats.lst import MAX_CLASSES, gap_finding, too_large_message
from oculi.errors import DataError
from oculi.types import IMAGE_EXTENSIONS, BoxTarget, Finding, Sample, SampleSet

FORMAT = "yolo"
_NAME_FILES = ("classes.txt", "obj.names", "names.txt")


def _yaml_names(path: Path) -> list[str] | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid YAML ({e}).") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except ValueError:
            raise DataError(f"{path}: `names:` keys must be class ids 0, 1, 2, ….") from None
        if max(by_id, default=0) >= MAX_CLASSES:
            raise DataError(f"{path}: `names:` has class id {max(by_id)}, more than oculi supports ({MAX_CLASSES:,} "
                            "classes). Class ids count 0, 1, 2, … — fix the key.")
        return [by_id.get(i, str(i)) for i in range(max(by_id, default=-1) + 1)]
    if isinstance(names, list):
        return [str(n) for n in names]
    return None


def _names_from_file(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: names file not found. Pass a YAML file with `names:` or a text file with one "
                        "class name per line.")
    if path.suffix.lower() in (".yaml", ".yml"):
        names = _yaml_names(path)
        if names is None:
            raise DataError(f"{path}: no `names:` list or dict in this YAML file.")
        return names
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _data_yaml(root: Path) -> Path | None:
    preferred = [root / n for n in ("data.yaml", "dataset.yaml", "config.yaml")]
    for candidate in [*preferred, *sorted(root.glob("*.yaml")), *sorted(root.glob("*.yml"))]:
        if candidate.is_file() and _yaml_names(candidate) is not None:
            return candidate
    return None


def _load_yaml(yaml_file: Path) -> dict:
    try:
        data = yaml.safe_load(yaml_file.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _dataset_root(yaml_file: Path, data: dict) -> Path:
    """The folder split paths are relative to: the YAML's ``path:`` (relative to the YAML's folder) when it is an
    existing folder, else the YAML's folder."""
    base = yaml_file.parent
    value = data.get("path")
    if isinstance(value, str) and value.strip():
        candidate = Path(value).expanduser()
        candidate = candidate if candidate.is_absolute() else base / candidate
        if candidate.is_dir():
            return candidate
    return base


def _split_images(value: str, root: Path, yaml_dir: Path) -> Path | None:
    """The existing images folder a split's ``value`` names, resolved as Ultralytics does: relative to the
    dataset root, then (for Roboflow's ``../train/images``) without the leading ``../``, then relative to the
    YAML's folder."""
    candidates = [root / value]
    if value.startswith("../"):
        candidates.append(root / value[3:])
    candidates.append(yaml_dir / value)
    return next((c for c in candidates if c.is_dir()), None)


def _labels_for(images: Path) -> Path:
    """The label folder of an images folder (Ultralytics' rule): its last ``images`` component replaced by
    ``labels`` (``train/images`` → ``train/labels``); the folder itself when it has no ``images`` component."""
    parts = images.parts
    if "images" not in parts:
        return images
    i = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:i], "labels", *parts[i + 1:])


def yaml_split_folders(yaml_file: Path) -> dict[str, Path]:
    """``{"train": …/labels/train2017, "val": …, "test": …}``: the existing label folder of each split the data
    YAML names with a folder path (``train: images/train2017``, Roboflow's ``train: ../train/images``; see
    :func:`_split_images` for how a path is resolved). Splits given as lists or image-list ``.txt`` files, and
    splits whose folder does not exist, are not mapped."""
    data = _load_yaml(yaml_file)
    root = _dataset_root(yaml_file, data)
    found: dict[str, Path] = {}
    for split in ("train", "val", "test"):
        value = data.get(split)
        if not isinstance(value, str) or not value.strip() or value.endswith(".txt"):
            continue
        images = _split_images(value.strip(), root, yaml_file.parent)
        if images is not None and (labels := _labels_for(images)).is_dir():
            found[split] = labels
        elif (labels := _beside_images(value.strip(), yaml_file.parent)) is not None:
            found[split] = labels
    return found


def _beside_images(value: str, yaml_dir: Path) -> Path | None:
    """For a split whose images folder is elsewhere (coco128 keeps ``images/train2017`` one level above its
    ``object_detection/config.yaml``): ``<YAML folder>/labels/<the part after the last images component>``."""
    parts = Path(value).parts
    if "images" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("images")
    sub = parts[i + 1:]
    labels = yaml_dir / "labels" / Path(*sub) if sub else None
    return labels if labels is not None and labels.is_dir() else None


def yolo_splits(path: Path) -> dict[str, Path]:
    """The label folders of the splits a YOLO dataset's data YAML names (``{"train": …/labels/train2017, "val":
    …}``; see :func:`yaml_split_folders`). A ``val`` or ``test`` split naming the same folder as ``train`` is not
    a split of its own and is left out; empty when there is no data YAML or it names no existing folder."""
    path = Path(path)
    yaml_file = path if path.is_file() else None
    root = path.parent if path.is_file() else (path.parent if path.name == "labels" else path)
    yaml_file = yaml_file or _data_yaml(root)
    if yaml_file is None:
        return {}
    found = yaml_split_folders(yaml_file)
    train = found.get("train")
    return {split: folder for split, folder in found.items()
            if split == "train" or train is None or folder.resolve() != train.resolve()}


def _is_label_file(path: Path) -> bool:
    """True for a ``.txt`` that can hold labels: not a names file (``classes.txt`` …) and not a ``README*.txt``
    (Roboflow puts ``README.roboflow.txt`` and ``README.dataset.txt`` beside the labels)."""
    return path.name not in _NAME_FILES and not path.name.lower().startswith("readme")


def is_yolo(path: Path) -> bool:
    """True when ``path`` is a YOLO data YAML, a folder with ``labels/**/*.txt``, or a folder whose data YAML
    names existing split folders (Roboflow's ``train/images`` + ``train/labels``, ``valid/…``, ``test/…``)."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".yaml", ".yml") and _yaml_names(path) is not None
    if not path.is_dir():
        return False
    if (path.name == "labels" or (path / "labels").is_dir()) and any(
            _is_label_file(p) for p in (path if path.name == "labels" else path / "labels").rglob("*.txt")):
        return True
    return bool(yolo_splits(path))


def _image_dirs(label_dir: Path, labels_root: Path, root: Path) -> list[Path]:
    parts = label_dir.parts
    dirs = []
    if "labels" in parts:
        i = len(parts) - 1 - parts[::-1].index("labels")
        dirs.append(Path(*parts[:i], "images", *parts[i + 1:]))
    if labels_root.name == "labels" and label_dir.is_relative_to(labels_root):
        dirs.append(root.parent / "images" / label_dir.relative_to(labels_root))
    dirs.append(label_dir)
    return dirs


def read_yolo(path: Path, names: Path | list[str] | None = None, classes: list[str] | None = None,
              split: str | None = None, num_classes: int | None = None) -> SampleSet:
    """Read YOLO txt labels into a detection :class:`SampleSet` (targets: :class:`BoxTarget`, ``xyxy`` absolute
    pixels; see the module docstring for layouts and names).

    ``path``: the dataset root, its ``labels`` folder, or a data YAML (its folder is the root). ``names``: a names
    file or the list of names. ``classes``: class names to read against (YOLO ids are mapped through the names).
    ``split``: ``train``, ``val`` or ``test`` reads only the label folder of that split as the data YAML names it
    (see :func:`yolo_splits`); None reads every label file under ``labels/``. ``num_classes``: without names, the
    classes are ids ``0…num_classes-1`` and a higher id is a ``label_out_of_range`` error naming the line (without
    either, unused ids below the highest one are a ``class_id_gap`` warning).
    Images without a label file are kept as negatives (info ``negative_images``); label files without an image
    are warnings (``missing_image``); reading a dataset whose data YAML names several splits with ``split=None``
    is a ``splits_merged`` warning. Findings name the label file and line: ``bad_line``, ``unknown_class``,
    ``empty_box``, ``box_clipped``, ``unreadable_image``. Raises :class:`DataError` when there are no labels."""
    path = Path(path)
    yaml_file = path if path.is_file() else None
    root = path.parent if path.is_file() else (path.parent if path.name == "labels" else path)
    if yaml_file is None:
        yaml_file = _data_yaml(root)
    findings: list[Finding] = []
    if isinstance(names, list):
        name_list: list[str] | None = list(names)
    elif names is not None:
        name_list = _names_from_file(Path(names))
    elif yaml_file is not None:
        name_list = _yaml_names(yaml_file)
    else:
        name_file = next((f for d in (root, root / "labels") for n in _NAME_FILES if (f := d / n).is_file()), None)
        name_list = _names_from_file(name_file) if name_file else None
    labels_root = labels_base = root / "labels" if (root / "labels").is_dir() else root
    if split is not None:
        splits = yolo_splits(path)
        if split not in splits:
            raise DataError(f"{root}: the data YAML names no existing `{split}` split folder under {labels_root} "
                            f"(found: {', '.join(splits) or 'none'}). Pass the split's folder itself.")
        labels_root = splits[split]
    else:
        splits = yolo_splits(path)
        if len(splits) > 1:
            named = ", ".join(f"{name} ({folder})" for name, folder in splits.items())
            findings.append(Finding("warning", "splits_merged", f"the data YAML names {len(splits)} splits — {named} "
                                    "— and all of them are read as one set here. Training and `oculi data check` "
                                    "read each split on its own; pass one split's folder to keep them apart.",
                                    str(yaml_file or root)))
    label_files = sorted(p for p in labels_root.rglob("*.txt") if _is_label_file(p)
                         and not any(part.startswith(".") for part in p.relative_to(labels_root).parts))
    if not label_files:
        raise DataError(f"{root}: no YOLO label files; expected {root}/labels/<image name>.txt with one "
                        "`class cx cy w h` line per box (normalised 0–1).")

    parsed: list[tuple[Path, Path, list[tuple[int, list[str]]]]] = []
    image_dirs: set[Path] = set()
    max_id = -1
    first_use: dict[int, tuple[str, int]] = {}
    for label_file in label_files:
        image = None
        for folder in _image_dirs(label_file.parent, labels_base, root):
            image = find_image(folder, label_file.stem)
            if image is not None:
                image_dirs.add(folder)
                break
        if image is None:
            findings.append(Finding("warning", "missing_image", f"no image named {label_file.stem}.<jpg|png> for "
                                    "this label file (looked in the matching images/ folder and beside it); its "
                                    "boxes are left out. Put the image there or delete the label file.",
                                    str(label_file)))
            continue
        rows = []
        text = label_file.read_text(encoding="utf-8-sig", errors="replace")  # binary junk → bad_line findings
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                fields = line.split()
                rows.append((lineno, fields))
                if fields[0].isdigit() and int(fields[0]) < MAX_CLASSES:
                    max_id = max(max_id, int(fields[0]))
                    first_use.setdefault(int(fields[0]), (str(label_file), lineno))
        parsed.append((label_file, image, rows))
    unnamed = name_list is None
    if name_list is None:
        name_list = [str(i) for i in range(num_classes if num_classes is not None else max_id + 1)]
        if num_classes is None and (gap := gap_finding(first_use)) is not None:
            findings.append(gap)
        findings.append(Finding("warning", "no_names", "no class names found (no names file, data YAML or "
                                "classes.txt); classes are named by their ids. Pass the names with `--names FILE`.",
                                str(root)))
    class_list = list(classes) if classes is not None else name_list
    index = {name: i for i, name in enumerate(class_list)}
    samples: list[Sample] = []
    labelled: set[Path] = set()
    for label_file, image, rows in parsed:
        labelled.add(image.resolve())
        size = image_size(image)
        if size is None:
            findings.append(Finding("error", "unreadable_image", f"{image} cannot be opened, so its normalised "
                                    "boxes cannot be converted; the image is left out.", str(label_file)))
            continue
        width, height = size
        boxes, labels = [], []
        for lineno, fields in rows:
            try:
                class_id = int(fields[0])
                cx, cy, w, h = (float(v) for v in fields[1:])
            except ValueError:
                findings.append(Finding("error", "bad_line", f"expected `class cx cy w h` (5 numbers, normalised "
                                        f"0–1); got {' '.join(fields)!r:.80}. The line is left out.",
                                        str(label_file), lineno))
                continue
            if class_id >= MAX_CLASSES:
                findings.append(Finding("error", "label_out_of_range", too_large_message(class_id),
                                        str(label_file), lineno))
                continue
            name = name_list[class_id] if 0 <= class_id < len(name_list) else None
            if unnamed and num_classes is not None and classes is None and name is None:
                findings.append(beyond_num_classes(class_id, num_classes, str(label_file), lineno))
                continue
            if name not in index:
                findings.append(Finding("error", "unknown_class", f"class id {class_id} has no name in "
                                        f"{len(name_list)} names / is not one of the classes read against; the box "
                                        "is left out. Fix the names file or the label.", str(label_file), lineno))
                continue
            box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
            cleaned = clean_box(box, size, str(label_file), lineno, findings)
            if cleaned is not None:
                boxes.append(cleaned)
                labels.append(index[name])
        target = BoxTarget(tuple(boxes), tuple(labels), (False,) * len(labels), width, height)
        samples.append(Sample(image=image, target=target, origin=str(label_file)))
    negatives = [p for folder in sorted(image_dirs) for p in sorted(folder.iterdir())
                 if p.suffix.lower() in IMAGE_EXTENSIONS and p.resolve() not in labelled]
    samples.extend(Sample(image=p, target=BoxTarget(), origin=str(p)) for p in negatives)
    if negatives or any(not s.target.labels for s in samples):
        count = sum(not s.target.labels for s in samples)
        findings.append(Finding("info", "negative_images", f"{count} image(s) without boxes ({len(negatives)} "
                                "without a label file) kept as negatives.", str(root)))
    return SampleSet(samples, class_list, task="detection", format=FORMAT, source=str(root), findings=findings)


def _place_image(image: Path, folder: Path, stem: str, copy: bool) -> None:
    if copy:
        copy_image(image, folder, stem)
        return
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"{stem}{image.suffix}"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(image.resolve(), link)


def write_yolo(sample_set: SampleSet, out_root: Path, copy_images: bool = False) -> list[Finding]:
    """Write a detection ``sample_set`` (``xyxy`` pixel boxes) as YOLO: ``out_root/labels/<stem>.txt`` with
    normalised ``class cx cy w h`` lines, ``out_root/images/<stem>.<ext>`` (a symbolic link to the image, or a
    byte-for-byte copy with ``copy_images``) and ``out_root/data.yaml`` with the ``names``. Negatives get an
    empty label file. Returns the findings about what changed: each ``difficult`` box (kept, flag lost), renamed
    files, images that cannot be opened (left out)."""
    out_root = Path(out_root)
    labels_dir = out_root / "labels"
    labels_dir.mkdir(parents=True, exist_ok=True)
    findings: list[Finding] = []
    for sample, stem in zip(sample_set.samples, unique_stems(sample_set.samples, findings, str(labels_dir)),
                            strict=True):
        target: BoxTarget = sample.target
        size = target_size(sample)
        if size is None:
            findings.append(Finding("error", "unreadable_image", f"{sample.image} cannot be opened, so its boxes "
                                    "cannot be normalised; the image is left out.", sample.where()))
            continue
        width, height = size
        lines = []
        difficult = target.difficult or (False,) * len(target.labels)
        for (x0, y0, x1, y1), label, hard in zip(target.boxes, target.labels, difficult, strict=True):
            values = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
            lines.append(f"{label} " + " ".join(f"{v:.10g}" for v in values) + "\n")
            if hard:
                corners = [round(v, 2) for v in (x0, y0, x1, y1)]
                findings.append(Finding("warning", "difficult_not_representable",
                                        f"the {sample_set.classes[label]!r} box at {corners} is marked "
                                        "difficult; YOLO has no such flag, so it is written as an ordinary box.",
                                        sample.where()))
        (labels_dir / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")
        _place_image(sample.image, out_root / "images", stem, copy_images)
    data = {"path": ".", "train": "images", "val": "images", "names": dict(enumerate(sample_set.classes))}
    (out_root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return findings
