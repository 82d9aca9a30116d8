"""Training end to end on tiny generated data: CLI, bundle round trip, reproducibility, incremental training,
bad data, freezing, class imbalance options, multi-label."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from oculi.artifacts import WEIGHTS, load_bundle, pack
from oculi.cli import app
from oculi.engine.training import train
from oculi.errors import ArtifactError, ConfigError, DataError
from oculi.inference import ClassificationPredictor
from oculi.tasks import load_predictor
from tests.helpers import TINY, make_class_folders

runner = CliRunner()


def quiet(*_: object) -> None:
    """An ``echo`` that prints nothing."""


@pytest.fixture(scope="module")
def trained(tiny_split, tmp_path_factory) -> Path:
    """A bundle trained for two epochs on the tiny split (shared by the tests that only read it)."""
    out = tmp_path_factory.mktemp("bundle") / "model"
    train("image-classification", tiny_split, {**TINY, "epochs": "2"}, output=out, progress=False, echo=quiet)
    return out


def test_cli_trains_one_epoch_and_writes_a_bundle(tiny_split, tmp_path):
    out = tmp_path / "model"
    args = ["train", "image-classification", "--train", str(tiny_split["train"]), "--validation",
            str(tiny_split["validation"]), "--output", str(out), "--no-progress"]
    for k, v in TINY.items():
        args += ["-p", f"{k}={v}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "num_classes=auto → 3" in result.output and "epoch 1/1" in result.output
    assert str(out) in result.output
    meta = json.loads((out / "model.json").read_text())
    assert meta["algorithm"] == "image-classification" and meta["classes"] == ["circle", "square", "stripes"]
    assert meta["hyperparameters"]["num_classes"] == 3 and meta["hyperparameters"]["resize"] == 37
    assert meta["input"]["height"] == 32 and "validation:accuracy" in meta["metrics"]
    assert (out / WEIGHTS).stat().st_size > 10_000
    # checkpoints are the job's (resume state), kept beside the job's log, not inside the model bundle
    job_dirs = list((Path(os.environ["OCULI_HOME"]) / "jobs").iterdir())
    assert len(job_dirs) == 1 and (job_dirs[0] / "checkpoints" / "last.ckpt").exists()
    assert (job_dirs[0] / "checkpoints" / "best.ckpt").exists() and (job_dirs[0] / "logs" / "train.log").exists()
    assert (out / "metrics.csv").read_text().startswith("epoch,")


def test_bundle_round_trip_gives_identical_predictions(trained, tiny_split):
    bundle = load_bundle(trained)
    images = sorted(tiny_split["validation"].glob("*/*.png"))
    predictor = ClassificationPredictor(bundle)
    before = predictor.probabilities(images)
    again = load_predictor(trained).probabilities(images)
    assert torch.equal(before, again)
    # The learned model separates the three generated classes.
    truth = torch.tensor([["circle", "square", "stripes"].index(p.parent.name) for p in images])
    assert (before.argmax(1) == truth).float().mean() >= 0.8
    # model.tar.gz (SageMaker's artifact form) loads the same weights.
    archive = pack(trained, trained.parent / "model.tar.gz")
    assert torch.equal(load_predictor(archive).probabilities(images), before)


def test_truncated_weights_give_a_clear_error(trained, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.json").write_text((trained / "model.json").read_text())
    data = (trained / WEIGHTS).read_bytes()
    (copy / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        load_bundle(copy)


def test_mismatched_weights_give_a_clear_error(trained, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    meta = json.loads((trained / "model.json").read_text())
    meta["hyperparameters"]["num_layers"] = 32  # a deeper network than the weights hold
    (copy / "model.json").write_text(json.dumps(meta))
    (copy / WEIGHTS).write_bytes((trained / WEIGHTS).read_bytes())
    with pytest.raises(ArtifactError, match="does not match the network"):
        load_bundle(copy)
    with pytest.raises(ArtifactError, match="model.json is missing"):
        load_bundle(tmp_path)


def test_seeded_runs_reproduce_validation_accuracy(tiny_split, tmp_path):
    params = {**TINY, "epochs": "2", "seed": "3"}
    a = train("image-classification", tiny_split, params, output=tmp_path / "a", progress=False, echo=quiet)
    b = train("image-classification", tiny_split, params, output=tmp_path / "b", progress=False, echo=quiet)
    assert [r["validation:loss"] for r in a.history] == [r["validation:loss"] for r in b.history]
    assert a.metrics["validation:accuracy"] == b.metrics["validation:accuracy"]


def test_incremental_training_starts_from_the_bundle(trained, tiny_split, tmp_path):
    lines: list[str] = []
    result = train("image-classification", tiny_split, {**TINY, "learning_rate": "0.0001"},
                   output=tmp_path / "inc", init_model=trained, progress=False, echo=lines.append)
    assert any("incremental training from" in line for line in lines)
    assert any("learning_rate" in line for line in lines) is False  # explicit value: nothing resolved
    # Starting from a trained model with a tiny learning rate keeps it accurate after one epoch.
    assert result.metrics["validation:accuracy"] >= 0.8
    with pytest.raises(ConfigError, match="num_layers"):
        train("image-classification", tiny_split, {**TINY, "num_layers": "32"}, output=tmp_path / "bad",
              init_model=trained, progress=False, echo=quiet)


def test_num_classes_mismatch_is_an_error(tiny_split, tmp_path):
    with pytest.raises(ConfigError, match="`num_classes` is 5 but the training data has 3 classes"):
        train("image-classification", tiny_split, {**TINY, "num_classes": "5"}, output=tmp_path / "m",
              progress=False, echo=quiet)


def test_bad_image_stops_before_training_unless_skipped(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=10)
    (data / "circle" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError) as e:
        train("image-classification", {"train": data}, TINY, output=tmp_path / "m1", progress=False, echo=quiet)
    assert "broken.png" in str(e.value) and e.value.report is not None
    assert not (tmp_path / "m1" / "model.json").exists()
    lines: list[str] = []
    result = train("image-classification", {"train": data}, {**TINY, "skip_bad_images": "true"},
                   output=tmp_path / "m2", progress=False, echo=lines.append)
    assert any("skipped 1 unreadable image" in line and "broken.png" in line for line in lines)
    assert (data / "circle" / "broken.png").read_bytes() == b"not an image at all"  # never touched
    assert result.model_dir.joinpath("model.json").exists()


def test_holdout_when_no_validation_channel(tmp_path):
    data = make_class_folders(tmp_path / "data", per_class=10)
    lines: list[str] = []
    result = train("image-classification", {"train": data}, TINY, output=tmp_path / "m", progress=False,
                   echo=lines.append)
    assert any("held out" in line and "stratified" in line for line in lines)
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert meta["dataset"]["train_images"] + meta["dataset"]["validation_images"] == 30


def test_freeze_backbone_trains_only_the_head(tiny_split, tmp_path):
    before = train("image-classification", tiny_split, {**TINY, "epochs": "1"}, output=tmp_path / "a",
                   progress=False, echo=quiet)
    start = load_bundle(before.model_dir).model.state_dict()
    after = train("image-classification", tiny_split, {**TINY, "freeze": "backbone"}, output=tmp_path / "b",
                  init_model=before.model_dir, progress=False, echo=quiet)
    end = load_bundle(after.model_dir).model.state_dict()
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed and all(k.startswith("fc.") for k in changed), changed


class TrainingView(L.Callback):
    """Records what training itself sees, batch by batch: the targets of every batch the training loader yields
    (per epoch), the logits the module computed for it and the loss it back-propagated."""

    def __init__(self) -> None:
        self.targets: list[list[torch.Tensor]] = []  # [epoch][batch] int64 [B]
        self.steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (logits, targets, loss)
        self._logits: torch.Tensor | None = None
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.register_forward_hook(self._keep_logits)

    def _keep_logits(self, _module: torch.nn.Module, _args: object, output: torch.Tensor) -> None:
        self._logits = output.detach().float()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.targets.append([])

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch = batch
        self.targets[-1].append(batch[1].detach().cpu())

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        assert self._logits is not None and self._batch is not None
        self.steps.append((self._logits.cpu(), self._batch[1].detach().cpu(), loss.detach().float().cpu()))


def _imbalanced(root: Path) -> Path:
    """20 circle and 4 square images: with validation_fraction=0.25 training gets 15 circles and 3 squares."""
    data = make_class_folders(root, per_class=20, classes=("circle",))
    make_class_folders(root, per_class=4, classes=("square",), seed=5)
    return data


def test_weighted_loss_changes_the_loss_training_back_propagates(tmp_path):
    """use_weighted_loss: the loss of every training step is the cross-entropy weighted by inverse class frequency
    (n / (classes × count) = 18 / (2 × [15, 3]) = [0.6, 3.0]) — recomputed here from the step's own logits and
    targets — and not the plain mean, which differs on batches that mix the classes. The sampler is untouched: no
    epoch draws more than the 3 squares the training split holds."""
    view = TrainingView()
    lines: list[str] = []
    train("image-classification", {"train": _imbalanced(tmp_path / "a")},
          {**TINY, "epochs": "4", "use_weighted_loss": "1", "validation_fraction": "0.25"},
          output=tmp_path / "m", progress=False, echo=lines.append, callbacks=[view])
    histogram = next(line for line in lines if "class histogram" in line)
    assert "circle 15" in histogram and "square 3" in histogram
    weights = torch.tensor([18 / (2 * 15), 18 / (2 * 3)])
    assert len(view.steps) == 8  # 4 epochs × 2 batches of 8 (the last partial batch is dropped)
    separable = 0
    for logits, targets, loss in view.steps:
        weighted = F.cross_entropy(logits, targets, weight=weights)
        plain = F.cross_entropy(logits, targets)
        assert torch.allclose(loss, weighted, rtol=1e-5, atol=1e-6), (loss, weighted, plain, targets)
        separable += int(abs(weighted - plain) > 1e-3)
    assert separable >= 2, "no step told the weighted loss from the plain one; the check proves nothing"
    assert all(int((t == 1).sum()) <= 3 for epoch in view.targets for t in [torch.cat(epoch)]), view.targets


def test_balanced_sampling_changes_the_batches_training_sees(tmp_path):
    """balanced_sampling: the batches the training loader yields (after the engine made it resumable) hold both
    classes about equally — 3 squares among 18 training images drawn with probability ∝ 1 / class count — where a
    plain shuffle yields at most 3 squares per epoch (3/16 = 19 % of the draws). The loss stays the plain mean."""
    view = TrainingView()
    train("image-classification", {"train": _imbalanced(tmp_path / "a")},
          {**TINY, "epochs": "4", "balanced_sampling": "1", "validation_fraction": "0.25"},
          output=tmp_path / "m", progress=False, echo=quiet, callbacks=[view])
    drawn = torch.cat([t for epoch in view.targets for t in epoch])
    assert len(view.targets) == 4 and len(drawn) == 64
    squares = int((drawn == 1).sum())
    # Expected 32 of 64; a plain shuffle gives at most 12. (Binomial(64, 0.5) < 20 has probability 0.001.)
    assert squares >= 20, f"{squares} squares in 64 draws: the sampler does not balance the classes"
    for logits, targets, loss in view.steps:
        assert torch.allclose(loss, F.cross_entropy(logits, targets), rtol=1e-5, atol=1e-6)


def test_top_k_and_early_stopping(tiny_split, tmp_path):
    lines: list[str] = []
    result = train("image-classification", tiny_split,
                   {**TINY, "epochs": "6", "top_k": "2", "early_stopping": "1", "early_stopping_min_epochs": "2",
                    "early_stopping_patience": "1", "early_stopping_tolerance": "0.5", "learning_rate": "0.001"},
                   output=tmp_path / "m", progress=False, echo=lines.append)
    assert "validation:top_2_accuracy" in result.metrics
    assert any("early stopping after epoch" in line for line in lines)
    assert len(result.history) < 6


def test_resnet_without_weights_file_says_what_to_pass(tiny_split, tmp_path):
    with pytest.raises(ConfigError, match="pretrained_weights=PATH"):
        train("image-classification", tiny_split,
              {**TINY, "num_layers": "18", "use_pretrained_model": "1"}, output=tmp_path / "m", progress=False,
              echo=quiet)


def test_resnet_pretrained_weights_file_is_loaded(tiny_split, tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    reference = resnet18(weights=None)
    save_file(reference.state_dict(), str(tmp_path / "r18.safetensors"))
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    for name in ("r18.safetensors", "r18.pth"):
        result = train("image-classification", tiny_split,
                       {**TINY, "num_layers": "18", "use_pretrained_model": "1", "epochs": "1",
                        "pretrained_weights": str(tmp_path / name), "freeze": "backbone"},
                       output=tmp_path / name.replace(".", "_"), progress=False, echo=quiet)
        weights = load_bundle(result.model_dir).model.state_dict()
        assert torch.equal(weights["layer1.0.conv1.weight"], reference.state_dict()["layer1.0.conv1.weight"])


def test_cli_errors_are_messages_not_tracebacks(tiny_split, tmp_path):
    result = runner.invoke(app, ["train", "image-classification", "--train", str(tiny_split["train"]),
                                 "-p", "mini_batch_size=0", "-p", "optimiser=adam", "--output", str(tmp_path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)  # main() prints it; the app raises it
    assert "mini_batch_size" in str(result.exception) and "optimizer" in str(result.exception)


def test_multi_label_training_from_a_manifest(tmp_path):
    from dataclasses import replace

    from oculi.data.channels import read_channel
    from oculi.data.formats.manifest import write_manifest

    folders = read_channel(make_class_folders(tmp_path / "imgs", per_class=10))
    # Every stripes image is also tagged "square": two labels per image for a third of the data.
    samples = [replace(s, target=(s.target, 1) if s.target == 2 else (s.target,)) for s in folders.samples]
    manifest = write_manifest(replace(folders.with_samples(samples), multi_label=True), tmp_path / "ml.manifest")
    with pytest.raises(ConfigError, match="multi_label=1"):
        train("image-classification", {"train": manifest}, TINY, output=tmp_path / "x", progress=False, echo=quiet)
    result = train("image-classification", {"train": manifest}, {**TINY, "multi_label": "1", "epochs": "2"},
                   output=tmp_path / "m", progress=False, echo=quiet)
    predictor = load_predictor(result.model_dir)
    assert predictor.spec["output"] == "sigmoid"
    probs = predictor.probabilities([s.image for s in samples[:4]])
    assert probs.shape == (4, 3) and bool(((probs >= 0) & (probs <= 1)).all())


def test_training_from_sagemaker_lst_channels(tmp_path):
    from oculi.data.channels import read_channel
    from oculi.data.formats.lst import write_lst

    images = make_class_folders(tmp_path / "train", per_class=8)
    write_lst(read_channel(images), tmp_path / "train.lst", images)
    result = train("image-classification", {"train": images, "train_lst": tmp_path / "train.lst"}, TINY,
                   output=tmp_path / "m", progress=False, echo=quiet)
    assert result.classes == ["0", "1", "2"]  # .lst files carry class ids only
    assert json.loads((result.model_dir / "model.json").read_text())["dataset"]["train_images"] > 0


def test_ctrl_c_keeps_the_best_epoch_so_far(tiny_split, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "model"
    args = [sys.executable, "-c", "from oculi.cli import main; main()", "train", "image-classification",
            "--train", str(tiny_split["train"]), "--output", str(out), "--no-progress"]
    for k, v in {**TINY, "epochs": "1000"}.items():
        args += ["-p", f"{k}={v}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def hang(what: str) -> str:
        """A hang guard's failure message: what did not happen, and everything the training printed."""
        proc.kill()
        return f"hang guard: {what}; the training printed:\n{proc.communicate()[0]}"

    # Generous limits that only stop a hung run; they fail with the run's own output, not a bare timeout.
    deadline = time.monotonic() + 300
    while not ((out / "metrics.csv").exists() and len((out / "metrics.csv").read_text().splitlines()) >= 3):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(hang("no two epochs written to metrics.csv within 300 s (or the run ended first)"))
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail(hang("still running 300 s after Ctrl-C"))
    assert proc.returncode == 130, output
    assert "interrupted after" in output
    meta = json.loads((out / "model.json").read_text())
    assert meta["best_epoch"] >= 1 and len(meta["history"]) >= 2
