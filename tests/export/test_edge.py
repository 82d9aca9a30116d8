"""`oculi export MODEL --edge OUT`: the package runs in a Python that has only onnxruntime, numpy and Pillow (no
torch, no oculi), and its answers equal oculi's own — class probabilities, detections (SSD and FCOS decoding +
NMS in numpy) and segmentation masks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.data.synthetic import sample_images
from oculi.errors import ArtifactError, ConfigError
from oculi.export.edge import export_edge
from oculi.tasks import load_predictor
from tests.export.conftest import oculi, random_bundle

EDGE_PACKAGES = ("numpy", "numpy.libs", "onnxruntime", "PIL", "pillow.libs")


@pytest.fixture(scope="module")
def edge_python(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A Python command that sees only onnxruntime, numpy and Pillow: ``-S`` (no site-packages) with a folder
    holding links to just those packages on its path."""
    import numpy

    site = Path(numpy.__file__).parent.parent
    folder = tmp_path_factory.mktemp("edge-site")
    for name in EDGE_PACKAGES:
        if (site / name).exists():
            (folder / name).symlink_to(site / name)
    return [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(folder)!r}); "
            "import runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three generated JPEG photos of different sizes and aspect ratios."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for index, (image, size) in enumerate(zip(sample_images(3, 96, 96, seed=5), [(80, 60), (45, 90), (128, 128)],
                                              strict=True)):
        path = folder / f"photo{index}.jpg"
        Image.fromarray(image.permute(1, 2, 0).numpy()).resize(size).save(path, quality=95)
        paths.append(path)
    return paths


def clean_env() -> dict[str, str]:
    """This process's environment without the variables that would put oculi's sources on the path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def run_edge(edge_python: list[str], package: Path, images: list[Path], *extra: str) -> list[dict]:
    """The package's answers, one dict per image."""
    done = subprocess.run([*edge_python, str(package / "predict.py"), *map(str, images), *extra],
                          capture_output=True, text=True, env=clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_edge_python_has_no_torch_and_no_oculi(edge_python, tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import importlib.util as u\nprint([m for m in ('torch', 'oculi', 'onnxruntime', 'numpy', "
                     "'PIL') if u.find_spec(m)])\n")
    done = subprocess.run([*edge_python, str(probe)], capture_output=True, text=True, timeout=60, env=clean_env())
    assert done.stdout.strip() == "['onnxruntime', 'numpy', 'PIL']", done.stderr


def test_classification_package_answers_like_oculi(classifier, edge_python, photos, tmp_path):
    package = export_edge(classifier, tmp_path / "edge").folder
    assert {"model.onnx", "oculi_edge.json", "predict.py", "requirements.txt", "README.md"} <= set(
        p.name for p in package.iterdir())
    answers = run_edge(edge_python, package, photos)
    predictor = load_predictor(classifier, precision="float32")
    for answer, photo in zip(answers, photos, strict=True):
        expected = predictor.predict(photo).probabilities
        assert np.allclose(answer["prediction"], expected, atol=0.02)
        assert int(np.argmax(answer["prediction"])) == int(np.argmax(expected))


@pytest.mark.parametrize(("network", "min_score"), [("ssd", 0.2), ("fcos", 0.0)])
def test_detection_package_gives_oculis_boxes(network, min_score, exported, edge_python, photos, tmp_path):
    # random weights: SSD's softmax scores many boxes above 0.2; FCOS's focal-loss prior keeps its scores low
    bundle = exported["detection"] if network == "ssd" else random_bundle(
        "object-detection", {"base_network": "efficientnet-lite0", "use_pretrained_model": False,
                             "image_shape": 96, "network": network}, ["box", "disc"], tmp_path / "model")
    package = export_edge(bundle, tmp_path / "edge").folder
    config = json.loads((package / "oculi_edge.json").read_text())
    assert config["decoder"]["kind"] == network and (package / "priors.npy").is_file()
    answers = run_edge(edge_python, package, photos, "--min-score", str(min_score))
    predictor = load_predictor(bundle, precision="float32")
    compared = 0
    for answer, photo in zip(answers, photos, strict=True):
        expected = predictor.predict(photo, min_score=min_score).sagemaker()["prediction"]
        assert len(answer["prediction"]) == len(expected)
        if expected:
            got, want = np.asarray(answer["prediction"]), np.asarray(expected)
            assert (got[:, 0] == want[:, 0]).all()  # the same classes, in the same (score) order
            assert np.allclose(got[:, 1:], want[:, 1:], atol=2e-3)  # scores and normalised corners
            compared += len(want)
    assert compared > 0  # there were boxes to compare


def test_segmentation_package_gives_oculis_masks(tiny_segmenter, edge_python, photos, tmp_path):
    package = export_edge(tiny_segmenter, tmp_path / "edge").folder
    answers = run_edge(edge_python, package, photos, "--mask-dir", str(tmp_path / "masks"))
    predictor = load_predictor(tiny_segmenter, precision="float32")
    for answer, photo in zip(answers, photos, strict=True):
        expected = predictor.predict(photo)
        mask = np.asarray(Image.open(answer["mask"]))
        want = np.asarray(Image.open(__import__("io").BytesIO(expected.png())))
        assert mask.shape == want.shape
        assert (mask == want).mean() > 0.98  # antialiased resizes (Pillow vs torchvision) may flip edge pixels
        for name, share in expected.fractions().items():
            assert abs(answer["fractions"][name] - share) < 0.02


def test_edge_refusals_name_the_fix(classifier, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds files"):
        export_edge(classifier, tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ArtifactError, match="--precision int8"):
        export_edge(classifier, tmp_path / "int8", precision="int8")
    assert not (tmp_path / "int8").exists()


def test_cli_edge_export(classifier, tmp_path, monkeypatch, capsys):
    code, out, _ = oculi(monkeypatch, capsys, "export", str(classifier), "--edge", str(tmp_path / "edge"))
    assert code == 0 and "predict.py" in out and (tmp_path / "edge" / "predict.py").is_file()
    code, _, err = oculi(monkeypatch, capsys, "export", str(classifier), "--edge", str(tmp_path / "edge"))
    assert code == 2 and "already holds files" in err and "Traceback" not in err
