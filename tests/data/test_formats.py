"""Readers and writers of class folders, .lst files and augmented manifests, and the channel resolver."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oculi.data.channels import read_channel, resolve_classification_channels, split_layout
from oculi.data.formats.folders import is_class_folders, read_folders
from oculi.data.formats.lst import is_lst, read_lst, write_lst
from oculi.data.formats.manifest import is_manifest, read_manifest, write_manifest
from oculi.errors import ConfigError, DataError


def codes(sample_set) -> list[str]:
    return [f.code for f in sample_set.findings]


def only(sample_set, code: str):
    found = [f for f in sample_set.findings if f.code == code]
    assert len(found) == 1, sample_set.findings
    return found[0]


# ---- class folders -----------------------------------------------------------------------------------------------


def test_read_folders_sorted_classes_recursion_and_ignored_files(class_folders: Path) -> None:
    s = read_folders(class_folders)
    assert s.classes == ["cat", "dog", "fish"]
    assert s.format == "folders" and not s.multi_label
    assert dict(s.class_counts()) == {0: 5, 1: 3, 2: 3}  # cat includes more/cat_nested.JPG (upper-case ext.)
    assert any(x.image.name == "cat_nested.JPG" and x.target == 0 for x in s.samples)
    note = only(s, "not_an_image_file")
    assert note.level == "info" and "notes.txt" in note.message


def test_read_folders_skips_hidden_and_warns_about_loose_images(class_folders: Path, image_factory) -> None:
    image_factory(class_folders / ".ipynb_checkpoints" / "x.jpg")
    image_factory(class_folders / "loose.jpg", seed=9)
    s = read_folders(class_folders)
    assert s.classes == ["cat", "dog", "fish"]
    warning = only(s, "image_outside_class")
    assert warning.level == "warning" and "loose.jpg" in warning.message


def test_read_folders_against_training_classes(class_folders: Path, image_factory) -> None:
    (class_folders / "fish").rename(class_folders / "fsh")
    (class_folders / "dog").rename(class_folders / "aardvark")  # sorts first, must still map by name
    s = read_folders(class_folders, classes=["cat", "dog", "fish"])
    assert s.classes == ["cat", "dog", "fish"]
    assert set(s.class_counts()) == {0}
    unknown = [f for f in s.findings if f.code == "unknown_class"]
    assert {Path(f.path).name for f in unknown} == {"aardvark", "fsh"}
    assert all(f.level == "error" for f in unknown)
    assert "Did you mean 'fish'" in next(f.message for f in unknown if f.path.endswith("fsh"))


def test_read_folders_empty_class_and_no_classes(tmp_path: Path, class_folders: Path) -> None:
    (class_folders / "empty").mkdir()
    finding = only(read_folders(class_folders), "empty_class")
    assert finding.level == "error" and finding.path.endswith("empty")
    with pytest.raises(DataError, match="no class sub-folders"):
        read_folders(tmp_path / "folders" / "cat" / "more")


def test_is_class_folders(class_folders: Path, lst_dataset: Path, tmp_path: Path) -> None:
    assert is_class_folders(class_folders)
    assert not is_class_folders(class_folders / "dog")  # images, no sub-folders
    assert not is_class_folders(lst_dataset)
    assert not is_class_folders(tmp_path / "missing")


# ---- .lst ------------------------------------------------------------------------------------------------------


def test_read_lst(lst_dataset: Path) -> None:
    s = read_lst(lst_dataset)
    assert s.format == "lst" and s.classes == ["0", "1", "2"] and not s.findings
    assert [x.target for x in s.samples] == [0, 1, 2, 0, 1, 2]
    assert s.samples[0].image == lst_dataset.parent / "images" / "img0.jpg"
    assert s.samples[1].origin == f"{lst_dataset}:2"
    named = read_lst(lst_dataset, classes=["cat", "dog", "fish"])
    assert named.classes == ["cat", "dog", "fish"]


def test_read_lst_float_labels_and_image_root(lst_dataset: Path, tmp_path: Path) -> None:
    lst = tmp_path / "elsewhere" / "im2rec.lst"
    lst.parent.mkdir()
    lst.write_text("0\t1.000000\timages/img0.jpg\n1\t0.000000\timages/img1.jpg\n")
    s = read_lst(lst, image_root=lst_dataset.parent)
    assert [x.target for x in s.samples] == [1, 0] and not s.findings


def test_read_lst_multi_label(lst_dataset: Path) -> None:
    lst = lst_dataset.parent / "multi.lst"
    lst.write_text("0\t1\t0\t1\timages/img0.jpg\n1\t0\t1\t0\timages/img1.jpg\n2\t0\t0\t0\timages/img2.jpg\n")
    s = read_lst(lst)
    assert s.multi_label and s.classes == ["0", "1", "2"]
    assert [x.target for x in s.samples] == [(0, 2), (1,), ()]


def test_read_lst_bad_lines(lst_dataset: Path) -> None:
    lst = lst_dataset.parent / "bad.lst"
    lst.write_text(
        "1\t0\timages/img0.jpg\n"  # ok
        "2 0 images/img1.jpg\n"  # spaces, not tabs
        "x\t0\timages/img1.jpg\n"  # non-numeric index
        "3\tcat\timages/img1.jpg\n"  # non-numeric class id
        "1\t1\timages/img2.jpg\n"  # duplicate index
        "4\t1\timages/nope.jpg\n"  # missing image
        "5\t-1\timages/img3.jpg\n"  # negative id
        "6\t1\t0\timages/img4.jpg\n"  # label columns differ from line 1
    )
    s = read_lst(lst)
    assert len(s.samples) == 1
    found = {(f.code, f.line) for f in s.findings}
    assert found == {
        ("bad_line", 2),
        ("bad_line", 3),
        ("bad_label", 4),
        ("duplicate_index", 5),
        ("missing_image", 6),
        ("label_out_of_range", 7),
        ("bad_line", 8),
    }
    assert all(f.level == "error" and f.path == str(lst) for f in s.findings)
    assert "tabs, not spaces" in next(f.message for f in s.findings if f.line == 2)
    assert "line 1" in next(f.message for f in s.findings if f.code == "duplicate_index")


def test_read_lst_out_of_range_against_classes(lst_dataset: Path) -> None:
    s = read_lst(lst_dataset, classes=["a", "b"])
    assert [f.code for f in s.findings] == ["label_out_of_range", "label_out_of_range"]
    assert len(s.samples) == 4


def test_lst_round_trip(lst_dataset: Path, tmp_path: Path) -> None:
    s = read_lst(lst_dataset)
    out = write_lst(s, tmp_path / "out" / "copy.lst", image_root=lst_dataset.parent)
    back = read_lst(out, image_root=lst_dataset.parent)
    assert [(x.image.resolve(), x.target) for x in back.samples] == [
        (x.image.resolve(), x.target) for x in s.samples
    ]
    with pytest.raises(DataError, match="not under the image folder"):
        write_lst(s, tmp_path / "x.lst", image_root=tmp_path / "out")


def test_is_lst_by_content(lst_dataset: Path, manifest_single: Path) -> None:
    renamed = lst_dataset.with_suffix(".txt")
    shutil.copy(lst_dataset, renamed)
    assert is_lst(lst_dataset) and is_lst(renamed)
    assert not is_lst(manifest_single)
    assert not is_lst(lst_dataset.parent / "images" / "img0.jpg")


# ---- augmented manifests ---------------------------------------------------------------------------------------


def test_read_manifest_single_label(manifest_single: Path) -> None:
    s = read_manifest(manifest_single)
    assert s.format == "manifest" and not s.multi_label and not s.findings
    assert s.classes == ["cat", "dog", "fish"]
    assert [x.target for x in s.samples] == [0, 1, 0, 1, 2]
    assert s.samples[0].image == manifest_single.parent / "images" / "s0.png"
    assert s.samples[4].origin == f"{manifest_single}:5"


def test_read_manifest_multi_hot(manifest_multi_hot: Path) -> None:
    s = read_manifest(manifest_multi_hot)
    assert s.multi_label and s.classes == ["person", "bicycle", "car"]
    assert [x.target for x in s.samples] == [(0, 2), (1,), (0, 1), (2,)]
    note = only(s, "label_format")
    assert note.level == "info" and "multi-hot" in note.message


def test_read_manifest_class_id_from_s3_images_folder(manifest_class_id: Path) -> None:
    s = read_manifest(manifest_class_id)
    assert s.multi_label and s.classes == ["0", "1", "2"]
    assert [x.target for x in s.samples] == [(0, 2), (1,), (0, 1, 2), (2,)]
    assert s.samples[0].image == manifest_class_id.parent / "images" / "c0.jpg"
    assert "class-id" in only(s, "label_format").message


def test_read_manifest_label_format_override(manifest_multi_hot: Path, tmp_path: Path) -> None:
    lines = manifest_multi_hot.read_text().splitlines()[
        1:2
    ]  # the "[0, 1, 0]" line, read as class ids 0 and 1
    path = tmp_path / "one.manifest"
    path.write_text("\n".join(lines))
    s = read_manifest(path, label_format="class-id")
    assert [x.target for x in s.samples] == [(0, 1)]
    with pytest.raises(ConfigError, match="label_format"):
        read_manifest(path, label_format="one-hot")  # type: ignore[arg-type]


def test_read_manifest_ground_truth_multilabel_type_means_class_ids(image_factory, tmp_path: Path) -> None:
    image = image_factory(tmp_path / "a.jpg")
    meta = {
        "class-map": {"0": "person", "1": "bicycle"},
        "type": "groundtruth/image-classification-multilabel",
    }
    path = tmp_path / "gt.manifest"
    path.write_text(json.dumps({"source-ref": str(image), "lbl": [1, 0], "lbl-metadata": meta}) + "\n")
    s = read_manifest(path)
    assert [x.target for x in s.samples] == [(0, 1)]  # both labels, not "bicycle only"


def test_read_manifest_image_roots_and_missing_image(manifest_class_id: Path, tmp_path: Path) -> None:
    moved = tmp_path / "downloaded"
    shutil.move(manifest_class_id.parent / "images", moved)
    s = read_manifest(manifest_class_id)
    missing = [f for f in s.findings if f.code == "missing_image"]
    assert [f.line for f in missing] == [1, 2, 3, 4] and not s.samples
    assert "s3://my-bucket/data/c0.jpg" in missing[0].message
    assert "--image-root s3://my-bucket/data=DIR" in missing[0].message
    s = read_manifest(
        manifest_class_id, image_roots={"s3://my-bucket": tmp_path, "s3://my-bucket/data/": moved}
    )
    assert len(s.samples) == 4 and s.samples[0].image == moved / "c0.jpg"


def test_read_manifest_bad_lines(tmp_path: Path, image_factory) -> None:
    image = image_factory(tmp_path / "a.jpg")
    meta = {"class-map": {"0": "cat", "1": "dog"}}
    rows = [
        json.dumps({"source-ref": str(image), "class": 0, "class-metadata": meta}),
        "{not json",
        json.dumps({"class": 1}),
        json.dumps({"source-ref": str(image)}),
        json.dumps({"source-ref": str(image), "class": 5, "class-metadata": meta}),
        json.dumps({"source-ref": str(image), "class": "cat"}),
        json.dumps({"source-ref": "missing.jpg", "class": 1}),
    ]
    path = tmp_path / "bad.manifest"
    path.write_text("\n".join(rows) + "\n")
    s = read_manifest(path, label_attribute="class")
    assert {(f.code, f.line) for f in s.findings} == {
        ("bad_json", 2),
        ("missing_attribute", 3),
        ("missing_attribute", 4),
        ("label_out_of_range", 5),
        ("bad_label", 6),
        ("missing_image", 7),
    }
    assert all(f.path == str(path) for f in s.findings)
    assert s.classes == ["cat", "dog"] and len(s.samples) == 1


def test_read_manifest_label_attribute_detection(tmp_path: Path, image_factory) -> None:
    image = image_factory(tmp_path / "a.jpg")
    path = tmp_path / "two.manifest"
    path.write_text(json.dumps({"source-ref": str(image), "species": 0, "colour": 1}) + "\n")
    with pytest.raises(DataError, match="species, colour"):
        read_manifest(path)
    assert read_manifest(path, label_attribute="colour").samples[0].target == 1


def test_read_manifest_rejects_detection_labels(tmp_path: Path) -> None:
    path = tmp_path / "boxes.manifest"
    box = {"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}]}
    meta = {"class-map": {"0": "bee"}, "type": "groundtruth/object-detection"}
    path.write_text(json.dumps({"source-ref": "s3://b/x.jpg", "bees": box, "bees-metadata": meta}) + "\n")
    with pytest.raises(DataError, match="object-detection"):
        read_manifest(path)


def test_read_manifest_against_training_classes(manifest_single: Path) -> None:
    s = read_manifest(manifest_single, classes=["fish", "cat", "dog"])
    assert [x.target for x in s.samples] == [1, 2, 1, 2, 0]  # mapped by class-name, not by id
    s = read_manifest(manifest_single, classes=["cat", "dog"])
    assert [f.code for f in s.findings] == ["unknown_class"] and "'fish'" in s.findings[0].message


@pytest.mark.parametrize("fixture", ["manifest_single", "manifest_multi_hot", "manifest_class_id"])
def test_manifest_round_trip(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    original = read_manifest(request.getfixturevalue(fixture))
    out = write_manifest(original, tmp_path / "out" / "copy.manifest")
    back = read_manifest(out)
    assert back.classes == original.classes and back.multi_label == original.multi_label
    assert [(x.image.resolve(), x.target) for x in back.samples] == [
        (x.image.resolve(), x.target) for x in original.samples
    ]
    assert [f for f in back.findings if f.level != "info"] == []
    first = json.loads(out.read_text().splitlines()[0])
    assert Path(first["source-ref"]).is_absolute()
    assert first["class-metadata"]["type"].startswith("groundtruth/image-classification")


def test_is_manifest_by_content(manifest_single: Path, lst_dataset: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "labels.txt"
    shutil.copy(manifest_single, renamed)
    assert is_manifest(manifest_single) and is_manifest(renamed)
    assert not is_manifest(lst_dataset)
    pretty = tmp_path / "pretty.json"
    pretty.write_text('{\n  "a": 1\n}\n')
    assert not is_manifest(pretty)


# ---- channels --------------------------------------------------------------------------------------------------


def test_read_channel_recognises_each_form(
    class_folders: Path, lst_dataset: Path, manifest_single: Path, tmp_path: Path
) -> None:
    assert read_channel(class_folders).format == "folders"
    assert read_channel(lst_dataset).format == "lst"
    assert read_channel(manifest_single).format == "manifest"
    # a folder holding one label file next to its images
    folder = read_channel(lst_dataset.parent)
    assert folder.format == "lst" and len(folder) == 6 and "label_file" in codes(folder)
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"\x00\x01")
    with pytest.raises(DataError, match="neither a .lst"):
        read_channel(stray)
    with pytest.raises(DataError, match="not found"):
        read_channel(tmp_path / "nope")


def test_split_layout(split_folders: Path, class_folders: Path) -> None:
    assert split_layout(split_folders) == {
        "train": split_folders / "train",
        "validation": split_folders / "val",
    }
    assert split_layout(class_folders) is None
    with pytest.raises(DataError, match="--channel train=.*train --channel validation=.*val"):
        read_channel(split_folders)


def test_resolve_channels_train_lst_relative_to_train(lst_dataset: Path, tmp_path: Path) -> None:
    lst_folder = tmp_path / "train_lst"
    lst_folder.mkdir()
    shutil.move(lst_dataset, lst_folder / "train.lst")
    val_lst = tmp_path / "val.lst"
    val_lst.write_text("0\t2\timages/img2.jpg\n")
    sets = resolve_classification_channels(
        {
            "train": lst_dataset.parent,
            "train_lst": lst_folder,
            "validation": lst_dataset.parent,
            "validation_lst": val_lst,
            "model": tmp_path / "model.tar.gz",
        }
    )
    assert len(sets["train"]) == 6 and sets["validation"].classes == sets["train"].classes
    assert [x.target for x in sets["validation"].samples] == [2]


def test_resolve_channels_validation_against_train_classes(split_folders: Path) -> None:
    (split_folders / "val" / "ants").rename(split_folders / "val" / "wasps")
    sets = resolve_classification_channels(
        {"train": split_folders / "train", "validation": split_folders / "val"}
    )
    assert sets["validation"].classes == ["ants", "bees"]
    assert "unknown_class" in codes(sets["validation"])


def test_resolve_channels_errors(class_folders: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'train'"):
        resolve_classification_channels({"trian": class_folders})
    with pytest.raises(ConfigError, match="detection / semantic segmentation"):
        resolve_classification_channels({"train": class_folders, "label_map": class_folders})
    with pytest.raises(ConfigError, match="no `train` channel"):
        resolve_classification_channels({"validation": class_folders})
    with pytest.raises(ConfigError, match="needs the 'validation' channel"):
        resolve_classification_channels({"train": class_folders, "validation_lst": class_folders})
