"""Class sub-folders: ``<root>/<class>/**/<image>`` (the torchvision ``ImageFolder`` layout).

Class names are the folder names, sorted; the class index of an image is the position of its folder's name in
that list (or in the ``classes`` it is read against). Hidden files and folders (``.ipynb_checkpoints``, ``.DS_Store``)
are skipped. Files whose extension is not an image extension are ignored with an info finding; files that have an
image extension but do not decode are left to the data check (``oculi.data.checks``), which decodes every image."""

from __future__ import annotations

from pathlib import Path

from oculi.errors import DataError
from oculi.registry import closest
from oculi.types import IMAGE_EXTENSIONS, Finding, Sample, SampleSet


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _files(folder: Path) -> list[Path]:
    """Every visible file under ``folder`` (recursively), sorted for a stable sample order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and _visible(p, folder))


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_class_folders(path: Path) -> bool:
    """True when ``path`` is a folder with at least one visible sub-folder that holds an image file."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(any(_is_image(f) and _visible(f, d) for f in d.rglob("*")) for d in _class_dirs(path))


def _listing(paths: list[Path], root: Path, limit: int = 3) -> str:
    names = ", ".join(str(p.relative_to(root)) for p in paths[:limit])
    return names + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def read_folders(root: Path, classes: list[str] | None = None) -> SampleSet:
    """Read ``<root>/<class>/**/*.<image extension>`` into a single-label :class:`SampleSet`.

    Targets are class indices (``int``) into the sorted folder names, or into ``classes`` when given (a validation
    set read against the training classes: folders are matched by name; a folder whose name is not in ``classes``
    is an ``unknown_class`` error finding and its images are left out). An empty class folder is an
    ``empty_class`` finding: an error for a training set, a warning when read against ``classes``.
    Raises :class:`DataError` when ``root`` is not a folder or has no class sub-folders."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"{root}: not a folder. Expected class sub-folders: {root}/<class name>/<image files>."
        )
    dirs = _class_dirs(root)
    if not dirs:
        raise DataError(
            f"{root}: no class sub-folders. Put the images of each class in their own folder: "
            f"{root}/<class name>/<image files>."
        )
    findings: list[Finding] = []
    loose = [p for p in root.iterdir() if p.is_file() and _is_image(p) and not p.name.startswith(".")]
    if loose:
        findings.append(
            Finding(
                "warning",
                "image_outside_class",
                f"{len(loose)} image(s) directly in {root} are not in a class folder and are ignored "
                f"({_listing(sorted(loose), root)}). Move them into {root}/<class name>/.",
                str(root),
            )
        )
    names = [d.name for d in dirs]
    class_list = list(classes) if classes is not None else names
    index = {name: i for i, name in enumerate(class_list)}
    samples: list[Sample] = []
    for folder in dirs:
        files = _files(folder)
        images = [f for f in files if _is_image(f)]
        others = [f for f in files if not _is_image(f)]
        if others:
            findings.append(
                Finding(
                    "info",
                    "not_an_image_file",
                    f"{len(others)} file(s) without an image extension ignored: {_listing(others, folder)}.",
                    str(folder),
                )
            )
        if folder.name not in index:
            near = closest(folder.name, class_list)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            findings.append(
                Finding(
                    "error",
                    "unknown_class",
                    f"folder {folder.name!r} ({len(images)} images) is not one of the training classes "
                    f"({', '.join(class_list)}).{hint} Rename the folder or add the class to the training data.",
                    str(folder),
                )
            )
            continue
        if not images:
            findings.append(
                Finding(
                    "error" if classes is None else "warning",
                    "empty_class",
                    f"class {folder.name!r} has no images. Add images to {folder} or remove the folder.",
                    str(folder),
                )
            )
        target = index[folder.name]
        samples.extend(Sample(image=f, target=target) for f in images)
    return SampleSet(samples, class_list, format="folders", source=str(root), findings=findings)
