"""Annotation files that once crashed the readers (found by bench/fuzz_inputs.py): wrong JSON types in COCO,
unhashable ids, JSON nested past Python's recursion limit, class ids of a trillion, binary YOLO label files. Each
must become a DataError or a finding that names the file — never a traceback or an out-of-memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.data.checks import check_path
from oculi.data.formats.coco import read_coco
from oculi.data.formats.lst import MAX_CLASSES, read_lst
from oculi.data.formats.manifest import read_manifest
from oculi.data.formats.yolo import read_yolo
from oculi.errors import DataError


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(folder / name)


def _coco(folder: Path, **changes: object) -> Path:
    _images(folder, ["a.png", "b.png"])
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 16},
                       {"id": 2, "file_name": "b.png", "width": 16, "height": 16}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8]},
                            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [2, 2, 8, 8]}]}
    data.update(changes)
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("key", ["annotations", "categories"])
def test_coco_lists_of_the_wrong_type_are_named(tmp_path: Path, key: str) -> None:
    path = _coco(tmp_path, **{key: 3.5})
    with pytest.raises(DataError, match=rf"annotations.json: \"{key}\" is float 3.5"):
        read_coco(path)


def test_coco_ids_that_are_lists_become_findings(tmp_path: Path) -> None:
    path = _coco(tmp_path, categories=[{"id": [1], "name": "cat"}, {"id": 2, "name": "dog"}])
    samples = read_coco(path)
    codes = {f.code for f in samples.findings}
    # the broken category is reported; category 1, still used by an annotation, is kept under its id
    assert {"bad_category", "undeclared_class"} <= codes and samples.classes == ["1", "dog"]
    assert all(f.path == str(path) for f in samples.findings if f.code == "bad_category")


def test_json_nested_past_the_recursion_limit_is_not_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "annotations.json"
    path.write_text('{"images": [], "annotations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(DataError, match="annotations.json: not valid JSON"):
        read_coco(path)
    with pytest.raises(DataError, match="annotations.json"):  # the data check names the file, no RecursionError
        check_path(path)


def test_a_trillion_as_a_class_id_is_refused_per_line(tmp_path: Path) -> None:
    _images(tmp_path, ["m0.png", "m1.png", "m2.png"])
    lines = [{"source-ref": f"m{i}.png", "label": i % 2, "label-metadata": {"class-name": "ab"[i % 2]}}
             for i in range(2)]
    lines.append({"source-ref": "m2.png", "label": 10**12, "label-metadata": {"class-name": "b"}})
    manifest = tmp_path / "train.manifest"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    samples = read_manifest(manifest)
    assert samples.classes == ["a", "b"] and len(samples) == 2
    [finding] = [f for f in samples.findings if f.code == "label_out_of_range"]
    assert finding.line == 3 and f"{MAX_CLASSES:,}" in finding.message

    lst = tmp_path / "train.lst"
    lst.write_text("0\t0\tm0.png\n1\t1\tm1.png\n2\t1e9\tm2.png\n")
    samples = read_lst(lst)
    assert samples.classes == ["0", "1"] and len(samples) == 2
    assert any(f.code == "label_out_of_range" and f.line == 3 for f in samples.findings)


def test_yolo_binary_label_files_and_huge_ids_are_findings(tmp_path: Path) -> None:
    _images(tmp_path / "images", ["a.png", "b.png", "c.png"])
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (labels / "b.txt").write_bytes(b"\xff\xfe\x00\x81 binary \x00\x9c\n")
    (labels / "c.txt").write_text(f"{10**12} 0.5 0.5 0.2 0.2\n")
    samples = read_yolo(tmp_path, names=["bee"])
    by_file = {(Path(f.path).name, f.code) for f in samples.findings}
    assert ("b.txt", "bad_line") in by_file and ("c.txt", "label_out_of_range") in by_file
    assert samples.classes == ["bee"]
