"""`oculi export --format onnx` and the onnx/torch runtimes of the predictors, on tiny bundles of every task: a
trained ResNet-20 classifier, random-weight SSD (EfficientNet-Lite0, 96 px) and PSP segmentation (64 px) networks."""

from __future__ import annotations

import json
import tarfile

import pytest
import torch
from torch import nn

from oculi.artifacts import ONNX, WEIGHTS, pack
from oculi.data.synthetic import sample_images
from oculi.errors import ArtifactError, ConfigError
from oculi.export import DEFAULT_TOLERANCE, export_onnx
from oculi.export.onnx import _AdaptiveAvgPool
from oculi.inference import DetectionPredictor, SegmentationPredictor
from oculi.precision import inference_precision
from oculi.tasks import load_predictor
from tests.export.conftest import copy_bundle, digests, oculi


def images_of_sizes(*sizes: tuple[int, int]) -> list[torch.Tensor]:
    """One generated ``uint8 [3, H, W]`` image per ``(H, W)``."""
    return [sample_images(1, h, w, seed=10 + n)[0] for n, (h, w) in enumerate(sizes)]


SIZES = ((32, 32), (48, 40), (90, 120), (32, 32), (200, 64))


def test_model_json_records_the_export(exported):
    anchors = load_predictor(exported["detection"], precision="float32").priors.shape[0]
    expected = {
        "classification": (["batch", 3, 32, 32], {"logits": ["batch", 3]}),
        "detection": (["batch", 3, 96, 96], {"cls_logits": ["batch", anchors, 3],
                                             "bbox_regression": ["batch", anchors, 4]}),
        "segmentation": (["batch", 3, "height", "width"], {"logits": ["batch", 3, "height", "width"]}),
    }
    for task, bundle in exported.items():
        entry = json.loads((bundle / "model.json").read_text())["onnx"]
        assert (bundle / ONNX).stat().st_size > 10_000 and entry["file"] == ONNX and entry["opset"] == 17
        inputs, outputs = expected[task]
        assert entry["inputs"][0]["name"] == "images" and entry["inputs"][0]["shape"] == inputs
        assert {output["name"]: output["shape"] for output in entry["outputs"]} == outputs
        parity = entry["parity"]
        assert parity["passed"] and parity["tolerance"] == DEFAULT_TOLERANCE
        assert all(0 < v["max_abs_diff"] <= DEFAULT_TOLERANCE * max(1, v["max_abs_torch"])
                   for v in parity["outputs"].values())
    seg = json.loads((exported["segmentation"] / "model.json").read_text())["onnx"]["parity"]
    assert {tuple(s[2:]) for s in seg["samples"]} == {(48, 64), (64, 38)}  # two aspects: dynamic height/width
    det = json.loads((exported["detection"] / "model.json").read_text())["onnx"]["parity"]["detections"]
    assert det["compared"] >= 40 and det["label_mismatches"] == 0 and det["box_max_abs_diff"] < 0.5


def test_onnx_classifier_agrees_with_torch_and_batches(exported, tiny_split):
    reference = load_predictor(exported["classification"], precision="float32")
    onnx = load_predictor(exported["classification"], runtime="onnx")
    assert (onnx.runtime.name, onnx.runtime.precision, reference.runtime.name) == ("onnx", "float32", "torch")
    files = [sorted((tiny_split["validation"] / c).glob("*.png"))[0] for c in ("circle", "square", "stripes")]
    images = [onnx.to_tensor(f) for f in files] + images_of_sizes(*SIZES)
    a, b = reference.probabilities(images), onnx.probabilities(images)
    assert torch.equal(a.argmax(1), b.argmax(1)) and torch.allclose(a, b, atol=1e-5)
    batched = onnx.predict(images, batch_size=3)  # several batches, the last one partial
    assert [r.predicted_index for r in batched] == a.argmax(1).tolist()
    assert [r.probabilities for r in batched] == [onnx.predict(image).probabilities for image in images]


def test_torch_precision_policy_keeps_top1(exported, tiny_split):
    auto = load_predictor(exported["classification"])
    assert auto.runtime.precision == inference_precision(torch.device("cpu"))
    fp32 = load_predictor(exported["classification"], precision="float32")
    bf16 = load_predictor(exported["classification"], precision="bfloat16")
    assert bf16.runtime.channels_last and fp32.runtime.channels_last  # on a CPU both (oculi.precision's rule)
    files = sorted(tiny_split["validation"].glob("*/*.png"))
    a, b = fp32.probabilities(files), bf16.probabilities(files)
    assert torch.equal(a.argmax(1), b.argmax(1))  # top-1 on every validation image
    assert (a - b).abs().max() < 0.05  # bf16 keeps ~3 significant digits of the logits
    assert not torch.equal(a, b)  # bf16 really ran
    # detection and segmentation under bf16: float32 results of the same form as float32's
    image = images_of_sizes((70, 90))[0]
    detections = load_predictor(exported["detection"], precision="bfloat16").detect([image])[0]
    assert detections["boxes"].dtype == torch.float32 and len(detections["boxes"]) > 0
    assert float(detections["boxes"][:, 2].max()) <= 90 and float(detections["boxes"][:, 3].max()) <= 70
    segmenter = load_predictor(exported["segmentation"], precision="bfloat16")
    assert segmenter.logits(image).dtype == torch.float32 and segmenter.predict(image).mask.shape == (70, 90)


def test_ssd_split_is_torchvisions_forward(exported):
    """The torch runtime's network + torchvision decoding/NMS gives exactly what SSD.forward gives on the
    predictor's (antialiased) stretch of each image, boxes scaled back to the image."""
    predictor = load_predictor(exported["detection"], precision="float32")
    width, height = predictor.model.transform.fixed_size
    images = images_of_sizes((height, width), (70, 130))
    with torch.no_grad():
        whole = predictor.model([torch.nn.functional.interpolate(i[None].float(), size=(height, width),
                                                                 mode="bilinear", antialias=True)[0] / 255
                                 for i in images])
    for image, split, full in zip(images, predictor.detect(images), whole, strict=True):
        scale = torch.tensor([image.shape[-1] / width, image.shape[-2] / height] * 2)
        assert len(full["boxes"]) > 0 and all(torch.equal(split[k], full[k]) for k in ("scores", "labels"))
        assert torch.allclose(split["boxes"], full["boxes"] * scale, atol=1e-3)


def test_onnx_detector_gives_torch_boxes_in_batches(exported):
    reference = load_predictor(exported["detection"], precision="float32")
    onnx = load_predictor(exported["detection"], runtime="onnx")
    assert isinstance(onnx, DetectionPredictor)
    images = images_of_sizes((96, 96), (60, 150), (160, 120), (96, 96))
    expected = [reference.predict(image) for image in images]
    for results in (onnx.predict(images, batch_size=3), reference.predict(images, batch_size=3)):
        assert len(results) == len(images)
        for got, want, image in zip(results, expected, images, strict=True):
            assert (got.width, got.height) == (image.shape[-1], image.shape[-2])
            top = 10
            assert got.labels[:top] == want.labels[:top]
            assert torch.allclose(torch.tensor(got.boxes[:top]), torch.tensor(want.boxes[:top]), atol=0.5)
            assert torch.allclose(torch.tensor(got.scores[:top]), torch.tensor(want.scores[:top]), atol=1e-4)


def test_onnx_segmenter_gives_torch_masks_in_batches(exported):
    reference = load_predictor(exported["segmentation"], precision="float32")
    onnx = load_predictor(exported["segmentation"], runtime="onnx")
    assert isinstance(onnx, SegmentationPredictor)
    images = images_of_sizes(*SIZES)  # 32×32 twice: those two run as one batch
    expected = [reference.predict(image).mask for image in images]
    for results in (onnx.predict(images, batch_size=4), reference.predict(images, batch_size=4)):
        for got, want, image in zip(results, expected, images, strict=True):
            assert got.mask.shape == image.shape[-2:]
            assert (got.mask == want).float().mean() > 0.999


def test_refused_export_writes_nothing(classifier, exported, tmp_path):
    fresh = copy_bundle(classifier, tmp_path / "fresh")
    before = digests(fresh)
    with pytest.raises(ArtifactError, match=r"model.onnx was not written .* logits differ by up to .*--tolerance"):
        export_onnx(fresh, tolerance=0)
    assert digests(fresh) == before and not list(tmp_path.glob("fresh/*.tmp"))
    again = copy_bundle(exported["classification"], tmp_path / "again")  # an earlier export stays as it was
    before = digests(again)
    with pytest.raises(ArtifactError, match="not written"):
        export_onnx(again, tolerance=1e-12)
    assert digests(again) == before
    with pytest.raises(ConfigError, match="tolerance got -1"):
        export_onnx(again, tolerance=-1)


def test_onnx_runtime_errors_name_the_fix(classifier, exported, tmp_path):
    with pytest.raises(ArtifactError, match=rf"{classifier} has no model.onnx: run `oculi export {classifier} "
                       "--format onnx` first"):
        load_predictor(classifier, runtime="onnx")
    stale = copy_bundle(exported["classification"], tmp_path / "stale")
    with torch.no_grad():  # new weights after the export (e.g. overwritten by hand)
        bundle_model = load_predictor(stale, precision="float32").model
        for parameter in bundle_model.parameters():
            parameter.add_(0.01)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in bundle_model.state_dict().items()}, str(stale / WEIGHTS))
    with pytest.raises(ArtifactError, match="exported from other weights.*oculi export"):
        load_predictor(stale, runtime="onnx")
    with pytest.raises(ConfigError, match="runtime got 'tensorrt'; expected one of auto, torch, onnx"):
        load_predictor(exported["classification"], runtime="tensorrt")
    with pytest.raises(ConfigError, match="precision=bfloat16 applies to runtime=torch"):
        load_predictor(exported["classification"], runtime="onnx", precision="bfloat16")
    with pytest.raises(ConfigError, match="precision got 'float16'"):
        load_predictor(exported["classification"], precision="float16")


def test_model_tar_gz_is_repacked_with_the_onnx_file(classifier, tmp_path):
    archive = pack(copy_bundle(classifier, tmp_path / "model"), tmp_path / "model.tar.gz")
    result = export_onnx(archive)
    assert result.archive == archive and result.path == archive / ONNX
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        meta = json.loads(tar.extractfile("model.json").read())
    assert {"model.json", WEIGHTS, ONNX} <= names and meta["onnx"]["parity"]["passed"]
    assert not list(tmp_path.glob("*.tmp"))
    image = images_of_sizes((40, 50))[0]
    onnx = load_predictor(archive, runtime="onnx").predict(image)
    assert onnx.predicted_index == load_predictor(archive, precision="float32").predict(image).predicted_index


def test_adaptive_pooling_rewrite_is_exact():
    for bins in (2, 3, 6):
        for shape in ((2, 4, 6, 8), (1, 3, 5, 3), (1, 2, 13, 7), (1, 2, 1, 1)):
            x = torch.randn(*shape)
            assert torch.allclose(_AdaptiveAvgPool((bins, bins))(x), nn.AdaptiveAvgPool2d(bins)(x), atol=1e-6)


def test_cli_export_and_predict(classifier, tmp_path, monkeypatch, capsys):
    bundle = copy_bundle(classifier, tmp_path / "model")
    image = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray(images_of_sizes((40, 60))[0].permute(1, 2, 0).numpy()).save(image)
    code, _, err = oculi(monkeypatch, capsys, "predict", str(bundle), str(image), "--runtime", "onnx")
    assert code == 4 and f"oculi export {bundle} --format onnx" in err and "Traceback" not in err
    code, _, err = oculi(monkeypatch, capsys, "export", str(bundle), "--format", "tflite")
    assert code == 2 and "--format got 'tflite'; expected one of onnx" in err and "Traceback" not in err
    code, _, err = oculi(monkeypatch, capsys, "export", str(bundle), "--format", "onnx", "--tolerance", "0")
    assert code == 4 and "not written" in err and "Traceback" not in err and not (bundle / ONNX).exists()
    code, _, err = oculi(monkeypatch, capsys, "export", str(tmp_path / "nowhere"), "--format", "onnx")
    assert code == 4 and "nowhere does not exist" in err
    code, out, _ = oculi(monkeypatch, capsys, "export", str(bundle), "--format", "onnx")
    assert code == 0 and "parity: passed" in out and str(bundle / ONNX) in out
    code, out, _ = oculi(monkeypatch, capsys, "predict", str(bundle), str(image), "--runtime", "onnx", "--json")
    onnx = json.loads(out)["prediction"]
    code, out, _ = oculi(monkeypatch, capsys, "predict", str(bundle), str(image), "--precision", "float32", "--json")
    assert code == 0 and max(abs(a - b) for a, b in zip(onnx, json.loads(out)["prediction"], strict=True)) < 1e-5
