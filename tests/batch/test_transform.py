"""Batch transform: per-image results equal the endpoint codec's bytes for predict, JSON-lines assembly, resume,
bad images listed while the rest succeed, two workers equal one, manifests with image roots, the job record and
the CLI."""

from __future__ import annotations

import json
import struct
import sys
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.batch import job as batch_job
from oculi.batch import transform
from oculi.cli import app
from oculi.errors import ConfigError, DataError
from oculi.inference.codecs import NotAcceptable
from oculi.jobs.describe import describe
from oculi.jobs.store import JobStore
from oculi.tasks import get_task, load_predictor
from tests.batch.conftest import copy_tree

NAMES = ["circle.jpg", "circle/circle_000.png", "circle/circle_001.png", "circle/circle_002.png", "square.jpg",
         "square/square_000.png", "square/square_001.png", "square/square_002.png", "stripes.jpg",
         "stripes/stripes_000.png", "stripes/stripes_001.png", "stripes/stripes_002.png"]


def outputs(folder: Path) -> dict[str, bytes]:
    """``{name: bytes}`` of every ``<name>.out`` below ``folder``."""
    found = {p.relative_to(folder).as_posix()[:-4]: p.read_bytes() for p in folder.rglob("*.out")}
    return dict(sorted(found.items()))


def expected(model: Path, folder: Path, names: list[str], accept: str | None, batch_size: int) -> dict[str, bytes]:
    """The codec's bytes for ``predict`` over the same images in the same batches."""
    predictor = load_predictor(model)
    codec = get_task(predictor.bundle.meta["task"]).codec
    media = codec.choose(accept)
    results = predictor.predict([folder / n for n in names], batch_size=batch_size)
    return {n: codec.encode(r, media) for n, r in zip(names, results, strict=True)}


def test_classification_writes_the_codec_output_per_image_and_records_the_job(classifier, image_tree, tmp_path):
    lines: list[str] = []
    summary = transform(classifier, image_tree, tmp_path / "out", batch_size=4, progress=False, echo=lines.append)
    assert (summary.status, summary.images, summary.done, summary.skipped, summary.failed) == \
        ("Completed", 12, 12, 0, 0)
    written = outputs(tmp_path / "out")
    assert list(written) == NAMES  # sub-folders kept; notes.txt and .cache/ left alone
    assert written == expected(classifier, image_tree, NAMES, None, batch_size=4)
    assert list(json.loads(written["circle.jpg"])) == ["prediction"]
    assert summary.errors_file is None and not (tmp_path / "out" / "errors.jsonl").exists()

    store = JobStore()
    job = store.get(summary.job_name)
    assert summary.job_name.startswith("image-classification-transform-20")
    assert (job["kind"], job["status"], job["pid"]) == ("transform", "Completed", None)
    assert job["final_metrics"] == {"Images": 12, "Done": 12, "Skipped": 0, "Failed": 0}
    described = describe(job, store)
    assert described["TransformJobStatus"] == "Completed" and described["TransformJobName"] == summary.job_name
    assert described["TransformOutput"] == {"S3OutputPath": str(tmp_path / "out"), "Accept": "application/json",
                                            "AssembleWith": "None"}
    assert [t["Status"] for t in described["Oculi"]["SecondaryStatusTransitions"]] == \
        ["Pending", "Starting", "Transforming", "Completed"]
    assert described["TransformStartTime"] <= described["TransformEndTime"]
    log = Path(job["log_path"]).read_text()
    assert "12 to transform" in log and "completed" in log and any("transform job" in line for line in lines)


def test_verbose_accept_and_unknown_accept(classifier, image_tree, tmp_path):
    summary = transform(classifier, image_tree / "square", tmp_path / "out", accept="application/json; verbose",
                        progress=False, echo=None)
    body = json.loads((tmp_path / "out" / "square_000.png.out").read_bytes())
    assert summary.accept == "application/json;verbose" and body["labels"] == ["circle", "square", "stripes"]
    with pytest.raises(NotAcceptable, match="application/json;verbose"):
        transform(classifier, image_tree, tmp_path / "other", accept="text/csv", progress=False, echo=None)


def test_segmentation_png_per_image_and_json_lines(segmenter, image_tree, tmp_path):
    folder = image_tree / "circle"
    names = ["circle_000.png", "circle_001.png", "circle_002.png"]
    summary = transform(segmenter, folder, tmp_path / "png", progress=False, echo=None)
    assert summary.accept == "image/png" and summary.done == 3
    written = outputs(tmp_path / "png")
    assert written == expected(segmenter, folder, names, None, batch_size=1)
    mask = Image.open(tmp_path / "png" / "circle_000.png.out")
    assert mask.size == Image.open(folder / "circle_000.png").size
    assert set(mask.getdata()) <= {0, 3, 6}  # the training label encoding (scale 3), not class indices

    with pytest.raises(ConfigError, match="image/png is binary.*--accept application/json"):
        transform(segmenter, folder, tmp_path / "lines", assemble_with="line", progress=False, echo=None)
    summary = transform(segmenter, folder, tmp_path / "lines", accept="application/json", assemble_with="line",
                        progress=False, echo=None)
    assert summary.assembled == tmp_path / "lines" / "circle.out"
    records = [json.loads(line) for line in summary.assembled.read_text().splitlines()]
    assert [r["source"] for r in records] == names
    want = expected(segmenter, folder, names, "application/json", batch_size=1)
    assert records == [{"source": n, **json.loads(want[n])} for n in names]
    assert [p.name for p in (tmp_path / "lines").iterdir() if not p.name.startswith(".")] == ["circle.out"]


def test_resume_recomputes_only_what_is_missing(classifier, image_tree, tmp_path):
    out = tmp_path / "out"
    transform(classifier, image_tree, out, progress=False, echo=None)
    gone = ["circle/circle_001.png", "stripes.jpg"]
    for name in gone:
        (out / f"{name}.out").unlink()
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.out")}
    (out / "square.jpg.out.4242.oculi-tmp").write_bytes(b"half a result of a killed run")
    summary = transform(classifier, image_tree, out, progress=False, echo=None)
    assert (summary.done, summary.skipped, summary.failed) == (2, 10, 0)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())  # untouched
    assert sorted(outputs(out)) == NAMES and not list(out.rglob("*.oculi-tmp"))

    with pytest.raises(ConfigError, match="other settings.*application/json;verbose"):
        transform(classifier, image_tree, out, accept="application/json;verbose", progress=False, echo=None)


def test_json_lines_in_input_order_with_resume(classifier, image_tree, tmp_path):
    out = tmp_path / "out"
    first = transform(classifier, image_tree, out, assemble_with="line", batch_size=5, progress=False, echo=None)
    assert first.assembled == out / "images.out" and not list(out.glob(".oculi-parts-*"))
    lines = first.assembled.read_text().splitlines()
    assert [json.loads(line)["source"] for line in lines] == NAMES
    assert [json.loads(line)["prediction"] for line in lines] == \
        [json.loads(b)["prediction"] for b in expected(classifier, image_tree, NAMES, None, batch_size=5).values()]

    # Drop two records, and move one to the parts folder, as a run interrupted before assembling leaves it.
    survivors = [line for line in lines if json.loads(line)["source"] not in ("circle.jpg", "square/square_002.png")]
    first.assembled.write_text("\n".join(survivors[1:]) + "\n")
    part = batch_job._Layout(out, out / ".oculi-parts-images").target(json.loads(survivors[0])["source"])
    part.parent.mkdir()
    part.write_text(survivors[0] + "\n")
    again = transform(classifier, image_tree, out, assemble_with="line", batch_size=5, progress=False, echo=None)
    assert (again.done, again.skipped) == (2, 10)
    assert again.assembled.read_text().splitlines() == lines


def _bomb_png(path: Path) -> Path:
    """A valid 8×8 PNG whose header claims 30000 × 30000 pixels (900 Mpx)."""
    Image.new("RGB", (8, 8), "red").save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", 30000, 30000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_bad_images_are_listed_and_the_rest_succeed(classifier, image_tree, tmp_path):
    folder = copy_tree(image_tree, tmp_path / "images")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    good = (folder / "circle" / "circle_000.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "text.png").write_text("hello")
    _bomb_png(folder / "bomb.png")
    summary = transform(classifier, folder, tmp_path / "out", batch_size=4, progress=False, echo=None)
    assert (summary.status, summary.done, summary.failed) == ("Completed", 12, 4)
    assert sorted(outputs(tmp_path / "out")) == NAMES
    errors = [json.loads(line) for line in summary.errors_file.read_text().splitlines()]
    assert [e["source"] for e in errors] == ["bomb.png", "corrupt.jpg", "text.png", "truncated.png"]
    reasons = {e["source"]: e["error"] for e in errors}
    assert all(str(folder / name) in reason for name, reason in reasons.items())
    assert "too large to decode" in reasons["bomb.png"] and "truncated" in reasons["truncated.png"]
    assert JobStore().get(summary.job_name)["final_metrics"]["Failed"] == 4

    # Fixed files are picked up by the next run; the errors file then lists only what still fails.
    for name in ("corrupt.jpg", "text.png", "bomb.png"):
        (folder / name).unlink()
    rerun = transform(classifier, folder, tmp_path / "out", progress=False, echo=None)
    assert (rerun.done, rerun.skipped, rerun.failed) == (0, 12, 1)
    assert [json.loads(line)["source"] for line in rerun.errors_file.read_text().splitlines()] == ["truncated.png"]
    (folder / "truncated.png").write_bytes(good)
    assert transform(classifier, folder, tmp_path / "out", progress=False, echo=None).errors_file is None
    assert not (tmp_path / "out" / "errors.jsonl").exists()


def test_two_workers_write_what_one_writes(classifier, image_tree, tmp_path):
    one = transform(classifier, image_tree, tmp_path / "one", batch_size=3, workers=1, progress=False, echo=None)
    two = transform(classifier, image_tree, tmp_path / "two", batch_size=3, workers=2, progress=False, echo=None)
    assert (two.done, two.failed) == (12, 0) and one.done == 12
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
    assert describe(JobStore().get(two.job_name), JobStore())["MaxConcurrentTransforms"] == 2


def test_manifest_with_an_image_root(classifier, image_tree, tmp_path):
    manifest = tmp_path / "batch.manifest"
    manifest.write_text("\n".join([
        json.dumps({"source-ref": "s3://bucket/photos/square/square_000.png", "class": 1}),
        json.dumps({"source-ref": "s3://bucket/photos/circle.jpg"}),
        "{not json",
        json.dumps({"source-ref": "s3://bucket/photos/missing.png"}),
        json.dumps({"source-ref": "s3://bucket/photos/circle.jpg"}),
    ]) + "\n")
    summary = transform(classifier, manifest, tmp_path / "out", image_roots={"s3://bucket/photos": image_tree},
                        progress=False, echo=None)
    assert (summary.done, summary.failed) == (2, 3)
    assert sorted(outputs(tmp_path / "out")) == ["circle.jpg", "square/square_000.png"]
    errors = [json.loads(line) for line in summary.errors_file.read_text().splitlines()]
    assert [e["line"] for e in errors] == [3, 4, 5]
    assert "not valid JSON" in errors[0]["error"] and f"{manifest}:4" in errors[1]["error"]
    assert "same output name" in errors[2]["error"] and "line 2" in errors[2]["error"]
    described = describe(JobStore().get(summary.job_name), JobStore())
    assert described["TransformInput"]["DataSource"]["S3DataSource"]["S3DataType"] == "AugmentedManifestFile"

    lines = transform(classifier, manifest, tmp_path / "lines", image_roots={"s3://bucket/photos": image_tree},
                      assemble_with="line", progress=False, echo=None)
    assert lines.assembled == tmp_path / "lines" / "batch.manifest.out"
    assert [json.loads(line)["source"] for line in lines.assembled.read_text().splitlines()] == \
        ["square/square_000.png", "circle.jpg"]


def test_single_image_and_clear_input_errors(classifier, image_tree, tmp_path):
    summary = transform(classifier, image_tree / "square.jpg", tmp_path / "out", progress=False, echo=None)
    assert summary.done == 1 and (tmp_path / "out" / "square.jpg.out").is_file()
    with pytest.raises(DataError, match="nowhere: not found"):
        transform(classifier, tmp_path / "nowhere", tmp_path / "x", progress=False, echo=None)
    with pytest.raises(DataError, match="neither an image"):
        transform(classifier, image_tree / "notes.txt", tmp_path / "x", progress=False, echo=None)
    with pytest.raises(ConfigError, match="--workers got 0"):
        transform(classifier, image_tree, tmp_path / "x", workers=0, progress=False, echo=None)
    with pytest.raises(ConfigError, match="is a file"):
        transform(classifier, image_tree, image_tree / "square.jpg", progress=False, echo=None)
    assert JobStore().list() and all(j["status"] == "Completed" for j in JobStore().list())  # no job for mistakes


def test_one_output_folder_takes_one_transform_at_a_time(classifier, image_tree, tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with (out / ".oculi-transform.lock").open("a") as held:  # as a running transform holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="Another transform is writing into"):
            transform(classifier, image_tree, out, progress=False, echo=None)
    assert transform(classifier, image_tree / "circle", out, progress=False, echo=None).done == 3


def test_a_corrupt_model_fails_the_job_with_the_reason(classifier, image_tree, tmp_path):
    import shutil

    from oculi.errors import ArtifactError

    broken = tmp_path / "broken"
    shutil.copytree(classifier, broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        transform(broken, image_tree, tmp_path / "out", job_name="broken-model", progress=False, echo=None)
    job = JobStore().get("broken-model")
    assert job["status"] == "Failed" and "weights.safetensors" in job["failure_reason"]


def _slow(monkeypatch, seconds: float, after: int | None = None) -> list[int]:
    """Make each batch take ``seconds``; with ``after``, the batch after that many raises KeyboardInterrupt."""
    calls: list[int] = []
    run = batch_job._Engine.run

    def slow_run(self, batch):
        calls.append(len(batch))
        if after is not None and len(calls) > after:
            raise KeyboardInterrupt
        threading.Event().wait(seconds)
        return run(self, batch)

    monkeypatch.setattr(batch_job._Engine, "run", slow_run)
    return calls


def test_ctrl_c_records_stopped_and_a_rerun_finishes(classifier, image_tree, tmp_path, monkeypatch):
    _slow(monkeypatch, 0.0, after=2)
    with pytest.raises(KeyboardInterrupt):
        transform(classifier, image_tree, tmp_path / "out", batch_size=2, job_name="interrupted", progress=False,
                  echo=None)
    job = JobStore().get("interrupted")
    assert job["status"] == "Stopped" and job["final_metrics"]["Done"] == 4
    assert len(outputs(tmp_path / "out")) == 4
    monkeypatch.undo()
    summary = transform(classifier, image_tree, tmp_path / "out", batch_size=2, progress=False, echo=None)
    assert (summary.done, summary.skipped) == (8, 4)


def test_jobs_stop_stops_a_running_transform(classifier, image_tree, tmp_path, monkeypatch):
    from oculi.jobs.runner import stop

    _slow(monkeypatch, 0.3)
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=transform(
        classifier, image_tree, tmp_path / "out", batch_size=1, job_name="to-stop", progress=False, echo=None)))
    thread.start()
    store = JobStore()
    deadline = 60
    while not list((tmp_path / "out").rglob("*.out")) and deadline > 0:
        threading.Event().wait(0.05)
        deadline -= 0.05
    stop("to-stop", store)
    thread.join(30)
    summary = result["summary"]
    assert summary.status == "Stopped" and 0 < summary.done < 12 and summary.remaining == 12 - summary.done
    assert store.get("to-stop")["status"] == "Stopped"


def test_cli_transform_jobs_list_and_describe(classifier, image_tree, tmp_path):
    runner = CliRunner()
    run = runner.invoke(app, ["transform", str(classifier), "--input", str(image_tree), "--output",
                              str(tmp_path / "out"), "--job-name", "cli-transform", "--no-progress"])
    assert run.exit_code == 0, run.output
    assert "Completed: 12 image(s) transformed" in run.output and "cli-transform" in run.output
    assert len(outputs(tmp_path / "out")) == 12
    listed = runner.invoke(app, ["jobs", "list"], env={"COLUMNS": "200"})
    assert "cli-transform" in listed.output and "transform: 12 done, 0 failed" in listed.output
    described = json.loads(runner.invoke(app, ["jobs", "describe", "cli-transform"]).output)
    assert described["TransformJobStatus"] == "Completed" and described["Oculi"]["Images"]["Done"] == 12
    resumed = runner.invoke(app, ["jobs", "resume", "cli-transform"])
    assert resumed.exit_code != 0 and "run the same `oculi transform` again" in str(resumed.exception)
    assert "Example: oculi transform" in runner.invoke(app, ["transform", "--help"]).output


@pytest.mark.parametrize(("model", "images", "code", "message"), [
    ("no-model", None, 4, "no-model does not exist. Pass a model bundle folder"),
    (None, "no-images", 3, "no-images: not found. Pass a folder of images"),
])
def test_cli_errors_exit_non_zero_without_a_traceback(classifier, image_tree, tmp_path, monkeypatch, capsys, model,
                                                       images, code, message):
    """Through the console entry point (``main``), as a user runs it: the exit code and the message, no traceback."""
    from oculi.cli import main

    monkeypatch.setattr(sys, "argv", ["oculi", "transform", str(tmp_path / model) if model else str(classifier),
                                      "--input", str(tmp_path / images) if images else str(image_tree),
                                      "--output", str(tmp_path / "out")])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == code and message in err and "Traceback" not in err


def test_an_explicit_runtime_wins_and_a_missing_onnx_model_is_refused_before_any_job(classifier, image_tree,
                                                                                     tmp_path):
    from oculi.errors import ArtifactError
    from oculi.export import export_onnx

    model = tmp_path / "model"
    copy_tree(classifier, model)
    with pytest.raises(ArtifactError, match="oculi export .* --format onnx"):
        transform(model, image_tree, tmp_path / "none", runtime="onnx", progress=False, echo=None)
    with pytest.raises(ConfigError, match="--runtime got 'tensorrt'"):
        transform(model, image_tree, tmp_path / "none", runtime="tensorrt", progress=False, echo=None)
    assert JobStore().list() == [] and not (tmp_path / "none").exists()  # refused before anything was written
    export_onnx(model)
    summary = transform(model, image_tree, tmp_path / "onnx", runtime="onnx", batch_size=4, progress=False,
                        echo=None)
    log = Path(JobStore().get(summary.job_name)["log_path"]).read_text()
    assert summary.done == 12 and "runtime: onnx" in log.lower()
    torch_run = transform(model, image_tree, tmp_path / "torch", runtime="torch", precision="float32",
                          batch_size=4, progress=False, echo=None)
    assert "runtime: torch" in Path(JobStore().get(torch_run.job_name)["log_path"]).read_text().lower()
    for name in NAMES:  # the same classes from both runtimes, probabilities within float noise
        a, b = (json.loads(outputs(tmp_path / d)[name])["prediction"] for d in ("onnx", "torch"))
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-3
