"""MNIST with PyTorch Lightning, written as a SageMaker script-mode entry point (the SageMaker PyTorch examples'
style): hyperparameters arrive as ``--name value`` arguments, data and output folders as ``SM_*`` variables.

Run it with oculi (or on SageMaker, unchanged)::

    oculi train --entry-point train.py --source-dir examples/mnist_lightning --train ../shared/data/mnist5k \\
        -p epochs=3 -p batch-size=64 \\
        --metric-definition 'validation:accuracy=val_accuracy=([0-9.]+)' \\
        --metric-definition 'train:loss=train_loss=([0-9.]+)'

or by hand: ``SM_CHANNEL_TRAIN=../shared/data/mnist5k SM_MODEL_DIR=/tmp/model python train.py --epochs 1``.

The train channel is a folder holding ``*.csv`` or ``*.csv.gz`` files (or one such file): one digit per row,
784 pixel values 0–255, then the label (the ``mnist5k`` layout). A seeded 10 % is held out for validation.
Each epoch prints ``epoch=E train_loss=… val_loss=… val_accuracy=…``; the model is written to ``SM_MODEL_DIR`` as
``model.safetensors`` plus ``model.json`` (input shape, normalisation, classes).

Checkpoints (SageMaker's contract, so ``oculi jobs stop`` / ``resume`` and managed spot training work): the
checkpoint folder is ``SM_CHECKPOINT_DIR`` (oculi), else ``LocalPath`` in ``checkpointconfig.json``, else
``/opt/ml/checkpoints`` when it exists. ``last.ckpt`` is written there after every epoch and when the job is
stopped (SIGTERM: Lightning ends training at the next step boundary, and the checkpoint is taken there). A run that
finds ``last.ckpt`` continues from it and prints ``resumed from epoch E, step S``. (Lightning's limit: a SIGTERM at
an epoch's last step interrupts that epoch's validation, and the resumed run does not redo it, so that epoch prints
no validation metrics. oculi's built-in algorithms wait for the validation in that case.) If the script fails, the
error goes to ``$SM_OUTPUT_DIR/failure`` (the job's FailureReason).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import traceback
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics (of x / 255)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", "--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit-train-batches", type=int, default=None, help="Stop each epoch after N batches.")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--num-gpus", type=int, default=int(os.environ.get("SM_NUM_GPUS", "0")))
    return parser.parse_args()


def checkpoint_dir() -> Path | None:
    """SageMaker's checkpoint folder: ``SM_CHECKPOINT_DIR`` (set by oculi), else ``LocalPath`` from
    ``checkpointconfig.json`` (SageMaker with ``checkpoint_s3_uri``), else ``/opt/ml/checkpoints`` if it exists."""
    if os.environ.get("SM_CHECKPOINT_DIR"):
        return Path(os.environ["SM_CHECKPOINT_DIR"])
    config = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "checkpointconfig.json"
    if config.is_file():
        return Path(json.loads(config.read_text()).get("LocalPath", "/opt/ml/checkpoints"))
    default = Path("/opt/ml/checkpoints")
    return default if default.is_dir() else None


def read_digits(channel: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All rows of the channel's CSV files → (float images [N, 1, 28, 28] normalised, int64 labels [N])."""
    root = Path(channel)
    files = sorted(root.glob("*.csv")) + sorted(root.glob("*.csv.gz")) if root.is_dir() else [root]
    if not files:
        raise SystemExit(f"no *.csv or *.csv.gz file in the train channel {root}")
    rows = []
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            text = f.read()
        values = np.array(text.replace("\n", ",").strip(",").split(","), dtype=np.float32)
        rows.append(values.reshape(-1, 785))
    data = np.concatenate(rows)
    images = torch.from_numpy(data[:, :784]).reshape(-1, 1, 28, 28) / 255.0
    return (images - MEAN) / STD, torch.from_numpy(data[:, 784]).long()


class Net(nn.Module):
    """The SageMaker PyTorch MNIST example's network: two convolutions, dropout, two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.dropout(x, training=self.training)
        return self.fc2(x)


class MNISTClassifier(L.LightningModule):
    def __init__(self, learning_rate: float) -> None:
        super().__init__()
        self.net = Net()
        self.learning_rate = learning_rate

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True)
        self.log("val_accuracy", (logits.argmax(1) == y).float().mean(), on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class CheckpointOnStop(L.Callback):
    """A stop (SIGTERM: StopTrainingJob, a spot interruption, `oculi jobs stop`) makes Lightning raise
    SIGTERMException at the next step boundary; write ``last.ckpt`` there so a restart loses no step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)
            print(f"stopped during epoch {trainer.current_epoch + 1}: checkpoint written at step "
                  f"{trainer.global_step} ({self.path})", flush=True)


class ResumeNotice(L.Callback):
    """Says where a run that found ``last.ckpt`` continues: epochs completed and optimizer steps taken."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        print(f"resumed from epoch {trainer.current_epoch}, step {trainer.global_step}", flush=True)


class PrintMetrics(L.Callback):
    """One line per epoch that a SageMaker metric regex can read, e.g. ``val_accuracy=([0-9.]+)``."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        print(f"epoch={trainer.current_epoch + 1} " + " ".join(
            f"{k}={float(m[k]):.4f}" for k in ("train_loss", "val_loss", "val_accuracy") if k in m), flush=True)


def main() -> None:
    try:
        train(parse_args())
    except Exception:
        output = os.environ.get("SM_OUTPUT_DIR")
        if output:  # SageMaker's (and oculi's) FailureReason
            Path(output).mkdir(parents=True, exist_ok=True)
            Path(output, "failure").write_text(traceback.format_exc().strip().splitlines()[-1])
        raise


def train(args: argparse.Namespace) -> None:
    if not args.train:
        raise SystemExit("no training data: set SM_CHANNEL_TRAIN or pass --train")
    L.seed_everything(args.seed, verbose=False)
    images, labels = read_digits(args.train)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))
    n_val = len(labels) // 10
    val, train = order[:n_val], order[n_val:]
    print(f"training on {len(train)} digits, validating on {len(val)}", flush=True)
    train_loader = DataLoader(TensorDataset(images[train], labels[train]), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(images[val], labels[val]), batch_size=256)

    model = MNISTClassifier(args.learning_rate)
    callbacks: list[L.Callback] = [PrintMetrics()]
    folder = checkpoint_dir()
    last = folder / "last.ckpt" if folder else None
    if folder is not None:
        callbacks += [ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0), CheckpointOnStop(last)]
    resume = last if last is not None and last.is_file() else None
    if resume is not None:
        callbacks.append(ResumeNotice())
    trainer = L.Trainer(
        max_epochs=args.epochs, accelerator="gpu" if args.num_gpus > 0 else "cpu", devices=1,
        limit_train_batches=args.limit_train_batches, logger=False, enable_checkpointing=folder is not None,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks,
        default_root_dir=os.environ.get("SM_OUTPUT_DATA_DIR"),
    )
    trainer.fit(model, train_loader, val_loader, ckpt_path=resume)

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(model_dir / "model.safetensors"))
    (model_dir / "model.json").write_text(json.dumps({
        "architecture": "mnist-cnn", "input_shape": [1, 28, 28], "mean": MEAN, "std": STD,
        "classes": [str(i) for i in range(10)],
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }, indent=2))
    print(f"saved the model to {model_dir / 'model.safetensors'}", flush=True)


if __name__ == "__main__":
    main()
