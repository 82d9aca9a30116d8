"""Pascal VOC semantic segmentation: ``JPEGImages/<name>.jpg`` with ``SegmentationClass/<name>.png`` palette masks
whose values are class indices (0 = background … 20 = tvmonitor) and 255 = ignore (object borders).

Class names are VOC's 21 unless the folder has a ``labelmap.txt`` (CVAT's ``name:r,g,b::`` lines, one per class
index), which :func:`write_voc_masks` writes for other class lists."""

from __future__ import annotations

from pathlib import Path

from oculi.data.formats.boxes import copy_image, find_image, unique_stems
from oculi.data.formats.masks import finish, load_mask, save_index_png, voc_palette
from oculi.errors import DataError
from oculi.types import Finding, MaskTarget, SampleSet

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def _names(root: Path) -> list[str]:
    labelmap = root / "labelmap.txt"
    if not labelmap.is_file():
        return list(VOC_CLASSES)
    lines = [ln.strip() for ln in labelmap.read_text(encoding="utf-8").splitlines()]
    return [ln.split(":", 1)[0] for ln in lines if ln and not ln.startswith("#")]


def read_voc_masks(root: Path, image_root: Path | None = None, classes: list[str] | None = None) -> SampleSet:
    """Read ``root/SegmentationClass/*.png`` with their images (``image_root`` or ``root/JPEGImages``, matched by
    base name) into a segmentation :class:`SampleSet`. A mask without its image is an error finding
    (``missing_image``) and is left out; masks are checked by :func:`~oculi.data.formats.masks.finish`."""
    root = Path(root)
    masks_dir = root / "SegmentationClass"
    if not masks_dir.is_dir():
        raise DataError(f"{root}: no SegmentationClass/ folder; a Pascal VOC segmentation folder holds "
                        "JPEGImages/ and SegmentationClass/.")
    images_dir = Path(image_root) if image_root is not None else root / "JPEGImages"
    findings: list[Finding] = []
    entries = []
    for mask in sorted(masks_dir.glob("*.png")):
        image = find_image(images_dir, mask.stem)
        if image is None:
            findings.append(Finding("error", "missing_image", f"no image {images_dir / mask.stem}.* for this mask; "
                                    "it is left out.", str(mask)))
            continue
        entries.append((image, MaskTarget(mask=mask), str(mask)))
    names = _names(root)
    samples, class_names = finish(entries, classes or names, None, None, findings)
    return SampleSet(samples, class_names, task="segmentation", format="voc", source=str(root), findings=findings)


def write_voc_masks(sample_set: SampleSet, out_root: Path) -> list[Finding]:
    """Write ``out_root/JPEGImages`` (images copied byte for byte), ``SegmentationClass/*.png`` (VOC palette,
    255 = ignore), ``ImageSets/Segmentation/default.txt`` and, unless the classes are VOC's, ``labelmap.txt``."""
    out_root = Path(out_root)
    findings: list[Finding] = []
    stems = unique_stems(sample_set.samples, findings, str(out_root))
    for sample, stem in zip(sample_set.samples, stems, strict=True):
        copy_image(sample.image, out_root / "JPEGImages", stem)
        save_index_png(load_mask(sample.target), out_root / "SegmentationClass" / f"{stem}.png")
    lists = out_root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "default.txt").write_text("".join(f"{s}\n" for s in stems), encoding="utf-8")
    if tuple(sample_set.classes) != VOC_CLASSES:
        palette = voc_palette()
        (out_root / "labelmap.txt").write_text(
            "# label:color_rgb:parts:actions\n" + "".join(f"{name}:{','.join(map(str, palette[i]))}::\n"
                                                         for i, name in enumerate(sample_set.classes)),
            encoding="utf-8")
    return findings
