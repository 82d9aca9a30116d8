"""Pascal VOC XML: ``<root>/Annotations/<name>.xml`` (one per image) and ``<root>/JPEGImages/<image>``.

Each ``<object>`` has a ``<name>``, an optional ``<difficult>`` flag (kept in ``BoxTarget.difficult``) and a
``<bndbox>`` of ``xmin, ymin, xmax, ymax``. VOC numbers pixels from 1 and its boxes include both edge pixels, so
a box covering the first pixel column is ``xmin=1, xmax=1``. In the ``xyxy`` convention of oculi (0-based, right
and bottom edges exclusive) that pixel spans ``0..1``: reading subtracts 1 from ``xmin``/``ymin`` and keeps
``xmax``/``ymax``; writing adds 1 back, so a round trip is exact. The classes are the object names sorted.

Images are found by ``<filename>`` in the image root (default ``<root>/JPEGImages``, then ``<root>/images``),
then by ``<path>`` (absolute, or relative to the XML's folder)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from oculi.data.formats.boxes import (
    clean_box,
    copy_image,
    image_size,
    number,
    target_size,
    unique_stems,
    unknown_class,
)
from oculi.data.formats.foreign import describe_foreign, find_foreign, is_voc_xml, xml_root
from oculi.errors import DataError
from oculi.types import BoxTarget, Finding, Sample, SampleSet

FORMAT = "voc"


def annotations_dir(path: Path) -> Path | None:
    """The folder of VOC ``.xml`` files for ``path`` (a VOC root with ``Annotations/`` or ``annotations/``, or
    that folder itself), or None when there is none. Only XML whose root is ``<annotation>`` counts: a CVAT
    export or a Label Studio config is not VOC."""
    path = Path(path)
    if not path.is_dir():
        return None
    for sub in ("Annotations", "annotations"):
        if any(is_voc_xml(f) for f in (path / sub).glob("*.xml")):
            return path / sub
    return path if any(is_voc_xml(f) for f in path.glob("*.xml")) else None


def _text(element: ET.Element | None, tag: str) -> str | None:
    found = element.find(tag) if element is not None else None
    return found.text.strip() if found is not None and found.text else None


def read_voc(root_or_annotations_dir: Path, image_root: Path | None = None,
             classes: list[str] | None = None) -> SampleSet:
    """Read Pascal VOC XML files into a detection :class:`SampleSet` (targets: :class:`BoxTarget`, ``xyxy``
    absolute pixels, 0-based — see the module docstring for the 1-based VOC conversion; ``difficult`` kept).

    ``classes``: class names to read against (other names are ``unknown_class`` errors, the box left out).
    Findings: ``bad_xml``, ``not_voc`` (other XML in the folder, ignored), ``bad_box``, ``missing_image``,
    ``unknown_class``, ``empty_box``, ``box_clipped``.
    Raises :class:`DataError` when there are no ``.xml`` files."""
    given = Path(root_or_annotations_dir)
    xml_dir = annotations_dir(given)
    if xml_dir is None:
        foreign = describe_foreign(given) if given.is_file() else find_foreign(given)
        if foreign:
            raise DataError(foreign)
        raise DataError(
            f"{given}: no Pascal VOC .xml files (XML whose root is <annotation>); expected "
            f"{given}/Annotations/<name>.xml next to {given}/JPEGImages/, or the folder of .xml files itself."
        )
    root = xml_dir.parent if xml_dir != given else given.parent
    folders = [Path(image_root)] if image_root is not None else [root / "JPEGImages", root / "images", xml_dir]
    findings: list[Finding] = []
    parsed: list[tuple[Path, Path, ET.Element]] = []
    for file in sorted(xml_dir.glob("*.xml")):
        try:
            tree = ET.parse(file).getroot()
        except ET.ParseError as e:
            findings.append(Finding("error", "bad_xml", f"not valid XML ({e}); the image is left out.", str(file)))
            continue
        if tree.tag != "annotation":
            what = describe_foreign(file)
            what = what.split("; ")[0].removeprefix(f"{file}: this looks like ") if what else f"<{xml_root(file)}>"
            findings.append(Finding("warning", "not_voc", f"not a Pascal VOC annotation (root <annotation>) but "
                                    f"{what}; the file is ignored.", str(file)))
            continue
        filename = _text(tree, "filename") or f"{file.stem}.jpg"
        candidates = [folder / filename for folder in folders]
        path_text = _text(tree, "path")
        if path_text:
            candidates.append(Path(path_text) if Path(path_text).is_absolute() else file.parent / path_text)
        image = next((c for c in candidates if c.is_file()), None)
        if image is None:
            findings.append(Finding(
                "error", "missing_image",
                f"image {filename!r} not found (looked in {', '.join(str(f) for f in folders)}"
                f"{' and at ' + path_text if path_text else ''}). Pass the images folder as the image root.",
                str(file)))
            continue
        parsed.append((file, image, tree))
    names = sorted({_text(obj, "name") or "" for _, _, tree in parsed for obj in tree.iter("object")})
    class_list = list(classes) if classes is not None else names
    index = {name: i for i, name in enumerate(class_list)}
    samples: list[Sample] = []
    for file, image, tree in parsed:
        where = str(file)
        size_element = tree.find("size")
        try:
            size: tuple[int, int] | None = (int(float(_text(size_element, "width") or "")),
                                            int(float(_text(size_element, "height") or "")))
        except ValueError:
            size = None
        if not size or min(size) <= 0:
            size = image_size(image)
        boxes, labels, difficult = [], [], []
        for obj in tree.iter("object"):
            name = _text(obj, "name") or ""
            bndbox = obj.find("bndbox")
            try:
                xmin, ymin, xmax, ymax = (float(_text(bndbox, tag) or "") for tag in ("xmin", "ymin", "xmax", "ymax"))
            except ValueError:
                findings.append(Finding("error", "bad_box", f"object {name!r} needs a <bndbox> with numeric xmin, "
                                        "ymin, xmax and ymax; it is left out.", where))
                continue
            if name not in index:
                findings.append(unknown_class(name, class_list, where, None))
                continue
            cleaned = clean_box((xmin - 1, ymin - 1, xmax, ymax), size, where, None, findings)
            if cleaned is not None:
                boxes.append(cleaned)
                labels.append(index[name])
                difficult.append((_text(obj, "difficult") or "0") not in ("0", "false", "False"))
        width, height = size if size else (None, None)
        samples.append(Sample(image=image, target=BoxTarget(tuple(boxes), tuple(labels), tuple(difficult), width,
                                                            height), origin=where))
    return SampleSet(samples, class_list, task="detection", format=FORMAT, source=str(xml_dir), findings=findings)


def _add(parent: ET.Element, tag: str, text: object) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = str(text)
    return element


def write_voc(sample_set: SampleSet, out_root: Path, copy_images: bool = False) -> list[Finding]:
    """Write a detection ``sample_set`` as Pascal VOC: ``out_root/Annotations/<name>.xml`` with 1-based
    ``xmin = x0 + 1, ymin = y0 + 1, xmax = x1, ymax = y1`` (see the module docstring) and ``<difficult>``.

    With ``copy_images`` the images are copied (byte for byte) to ``out_root/JPEGImages``; otherwise ``<path>``
    holds each image's absolute path. Returns the findings about what changed (renamed files)."""
    out_root = Path(out_root)
    xml_dir = out_root / "Annotations"
    xml_dir.mkdir(parents=True, exist_ok=True)
    findings: list[Finding] = []
    for sample, stem in zip(sample_set.samples, unique_stems(sample_set.samples, findings, str(xml_dir)),
                            strict=True):
        target: BoxTarget = sample.target
        annotation = ET.Element("annotation")
        if copy_images:
            image = copy_image(sample.image, out_root / "JPEGImages", stem)
            _add(annotation, "folder", "JPEGImages")
            _add(annotation, "filename", image.name)
        else:
            _add(annotation, "filename", sample.image.name)
            _add(annotation, "path", sample.image.resolve())
        size = target_size(sample)
        if size is not None:
            size_element = ET.SubElement(annotation, "size")
            _add(size_element, "width", size[0])
            _add(size_element, "height", size[1])
            _add(size_element, "depth", 3)
        difficult = target.difficult or (False,) * len(target.labels)
        for (x0, y0, x1, y1), label, hard in zip(target.boxes, target.labels, difficult, strict=True):
            obj = ET.SubElement(annotation, "object")
            _add(obj, "name", sample_set.classes[label])
            _add(obj, "difficult", int(hard))
            bndbox = ET.SubElement(obj, "bndbox")
            for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
                _add(bndbox, tag, number(value))
        ET.indent(annotation)
        ET.ElementTree(annotation).write(xml_dir / f"{stem}.xml", encoding="utf-8", xml_declaration=False)
    return findings
