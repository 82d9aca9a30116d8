"""`oculi export --precision int8` (accuracy-gated static quantization), `oculi benchmark` and `runtime=auto`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from oculi.artifacts import ONNX
from oculi.errors import ConfigError
from oculi.export.benchmark import benchmark
from oculi.export.quantize import QuantizationRefused, export_quantized
from oculi.inference.runtimes import QUANTIZED, choose_runtime, machine_kind
from oculi.tasks import evaluate, load_predictor
from tests.export.conftest import digests, oculi


def copy(bundle: Path, to: Path) -> Path:
    return Path(shutil.copytree(bundle, to))


def test_int8_classifier_keeps_its_accuracy_and_records_what_it_measured(classifier, tmp_path):
    bundle = copy(classifier, tmp_path / "model")
    lines: list[str] = []
    result = export_quantized(bundle, "int8", calibration_size=24, max_accuracy_drop=0.05, progress=lines.append)
    entry = json.loads((bundle / "model.json").read_text())["onnx_int8"]
    assert result.path == bundle / QUANTIZED["int8"] and result.path.is_file()
    assert (bundle / ONNX).is_file()  # the float32 model it was measured against came along
    assert entry["metric"] == "accuracy" and entry["drop"] <= 0.05
    assert entry["calibration"]["images"] == 24 and len(entry["calibration"]["fingerprint"]) == 16
    assert entry["float32_metric"] - entry["metric_value"] == pytest.approx(entry["drop"])
    assert (bundle / QUANTIZED["int8"]).stat().st_size < (bundle / ONNX).stat().st_size / 2  # int8 weights
    # the recorded accuracy is what the int8 predictor really gets on that data
    predictor = load_predictor(bundle, runtime="onnx", precision="int8")
    assert predictor.runtime.precision == "int8"
    measured = evaluate(predictor, entry["data"], progress=False).metrics["accuracy"]
    assert measured == pytest.approx(entry["metric_value"])
    assert any("int8: accuracy" in line for line in lines)
    assert entry["machine"] == machine_kind()


AUTO_WITHOUT_BF16 = """
import json, sys
from oculi.inference.runtimes import choose_runtime, machine_kind
from oculi.tasks import load_predictor
bundle = sys.argv[1]
for measured in ("cpu:another", machine_kind()):
    meta = json.load(open(bundle + "/model.json"))
    meta["onnx_int8"]["machine"] = measured
    json.dump(meta, open(bundle + "/model.json", "w"))
    predictor = load_predictor(bundle)
    print(json.dumps([machine_kind(), *choose_runtime(predictor.bundle, predictor.device)]))
"""


def test_auto_on_a_cpu_without_bf16_takes_int8_only_where_its_accuracy_was_measured(classifier, tmp_path):
    bundle = copy(classifier, tmp_path / "model")
    export_quantized(bundle, "int8", calibration_size=12, max_accuracy_drop=0.05)
    # a CPU without bf16, as torch and oneDNN see one when limited to AVX2 (a real AVX2-only CPU on CI)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-c", AUTO_WITHOUT_BF16, str(bundle)], env=env, capture_output=True,
                         text=True, check=True).stdout
    (kind, *elsewhere), (_, *here) = (json.loads(line) for line in out.splitlines())
    assert kind == "cpu:avx2"
    assert elsewhere[:2] == ["onnx", "float32"] and "measured on cpu:another" in elsewhere[2]
    assert here[:2] == ["onnx", "int8"] and "measured on this kind of CPU" in here[2]


def test_an_impossible_bound_is_refused_and_the_bundle_stays_byte_identical(classifier, tmp_path):
    bundle = copy(classifier, tmp_path / "model")
    before = digests(bundle)
    dark = tmp_path / "dark"  # calibrating on black images only: every real activation saturates
    for name in ("a", "b", "c"):
        (dark / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (32, 32)).save(dark / name / f"{i}.png")
    float_accuracy = evaluate(load_predictor(bundle, precision="float32"), json.loads(
        (bundle / "model.json").read_text())["dataset"]["channels"]["validation"], progress=False).metrics["accuracy"]
    assert float_accuracy > 0.5  # there is accuracy to lose
    with pytest.raises(QuantizationRefused, match="nothing was written") as refused:
        export_quantized(bundle, "int8", calibration=dark, max_accuracy_drop=0.0)
    assert len(refused.value.attempts) == 5 and all(a["drop"] > 0 for a in refused.value.attempts)
    assert digests(bundle) == before


def test_bad_requests_name_the_fix(classifier, tmp_path):
    bundle = copy(classifier, tmp_path / "model")
    with pytest.raises(ConfigError, match="--precision got 'int4'"):
        export_quantized(bundle, "int4")
    with pytest.raises(ConfigError, match="--max-accuracy-drop"):
        export_quantized(bundle, "int8", max_accuracy_drop=-1)
    meta = json.loads((bundle / "model.json").read_text())
    meta["dataset"]["channels"] = {}
    (bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="Pass --data DATA"):
        export_quantized(bundle, "int8")


def test_int8_detector_and_segmenter_keep_their_metric(tiny_detector, tiny_segmenter, tmp_path):
    for name, source, metric in (("det", tiny_detector, "mAP"), ("seg", tiny_segmenter, "mIOU")):
        bundle = copy(source, tmp_path / name)
        calibration = None
        if name == "seg":  # the training images folder alone: calibration needs no masks
            calibration = json.loads((bundle / "model.json").read_text())["dataset"]["channels"]["train"]
        result = export_quantized(bundle, "int8", calibration=calibration, calibration_size=12,
                                  max_accuracy_drop=0.02)
        assert result.entry["metric"] == metric and result.entry["drop"] <= 0.02
        if calibration:  # every image of the folder, up to the size asked for
            files = [f for f in Path(calibration).iterdir() if f.suffix in (".png", ".jpg")]
            assert result.entry["calibration"]["images"] == min(12, len(files)) > 0
            assert result.entry["calibration"]["data"] == calibration
        predictor = load_predictor(bundle, runtime="onnx", precision="int8")
        assert evaluate(predictor, result.entry["data"], progress=False).metrics[metric] == pytest.approx(
            result.entry["metric_value"])


def test_benchmark_rows_and_auto_picks_the_measured_fastest(classifier, tmp_path, monkeypatch, capsys):
    bundle = copy(classifier, tmp_path / "model")
    export_quantized(bundle, "int8", calibration_size=24, max_accuracy_drop=0.05)
    table = benchmark(bundle, runs=5, output=tmp_path / "bench")
    rows = {(row["runtime"], row["precision"]): row for row in table.rows}
    assert {("torch", "float32"), ("onnx", "float32"), ("onnx", "int8")} <= set(rows)
    for row in rows.values():
        assert {"size_mb", "metric", "metric_change", "p50_ms", "p95_ms", "throughput", "speedup", "ok"} <= set(row)
        assert row["p50_ms"] > 0 and row["throughput"] > 0 and row["metric"] is not None
    assert rows[("torch", "float32")]["speedup"] == pytest.approx(1.0)
    assert rows[("onnx", "int8")]["size_mb"] < rows[("onnx", "float32")]["size_mb"]
    saved = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert len(saved["rows"]) == len(table.rows)
    assert "| onnx | int8 |" in (tmp_path / "bench" / "benchmark.md").read_text()
    # filed by machine kind; auto takes the fastest row within the bound
    filed = json.loads((bundle / "model.json").read_text())["benchmarks"][machine_kind()]
    fastest = min((r for r in filed["rows"] if r["ok"]), key=lambda r: r["p50_ms"])
    predictor = load_predictor(bundle, runtime="auto")
    assert (predictor.runtime.name, predictor.runtime.precision) == (fastest["runtime"], fastest["precision"])
    assert "fastest within the accuracy bound" in predictor.runtime.reason
    # a row below the accuracy floor is never chosen
    for row in filed["rows"]:
        row["ok"] = row is not fastest
    meta = json.loads((bundle / "model.json").read_text())
    meta["benchmarks"][machine_kind()] = filed
    (bundle / "model.json").write_text(json.dumps(meta))
    runtime, precision, _ = choose_runtime(load_predictor(bundle).bundle, load_predictor(bundle).device)
    assert (runtime, precision) != (fastest["runtime"], fastest["precision"])
    code, out, _ = oculi(monkeypatch, capsys, "benchmark", str(bundle), "--runs", "3", "--runtimes", "onnx",
                         "--precisions", "float32,int8", "--no-record")
    assert code == 0 and "| onnx | int8 |" in out


def test_cli_int8_export(classifier, tmp_path, monkeypatch, capsys):
    bundle = copy(classifier, tmp_path / "model")
    code, out, _ = oculi(monkeypatch, capsys, "export", str(bundle), "--format", "onnx", "--precision", "int8",
                         "--calibration-size", "12", "--max-accuracy-drop", "0.05", "--no-progress")
    assert code == 0 and "int8:" in out and (bundle / QUANTIZED["int8"]).is_file()
    code, out, err = oculi(monkeypatch, capsys, "predict", str(bundle), str(next((Path(json.loads(
        (bundle / "model.json").read_text())["dataset"]["channels"]["validation"])).rglob("*.png"))),
        "--precision", "int8", "--show-runtime")
    assert code == 0 and "runtime: onnx int8" in err
