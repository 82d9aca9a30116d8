"""Distributed training: layouts and their errors (no processes), and a real 2-process DDP run on CPU (gloo)
through the CLI and torchrun, checking that both ranks end with identical weights and only one bundle is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from oculi.algorithms import get_algorithm
from oculi.artifacts import read_meta
from oculi.engine.distributed import Distributed, plan, weights_checksum
from oculi.errors import ConfigError
from tests.helpers import TINY

TORCHRUN_ENV = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}


def test_layouts_split_mini_batch_size_per_instance():
    single = plan(1, 32)
    assert (single.world_size, single.needs_launch, single.trainer_options()["devices"]) == (1, False, 1)
    # instance_count alone: N simulated instances on this machine, each with the whole mini_batch_size
    sim = plan(2, 32, env={})
    assert (sim.nodes, sim.devices, sim.batch_per_device, sim.needs_launch) == (1, 2, 32, True)
    assert sim.trainer_options()["strategy"].process_group_backend in ("gloo", "nccl")
    # --devices: one instance whose mini_batch_size is split across its devices (SageMaker's rule)
    split = plan(1, 32, Distributed(devices=4), env={})
    assert (split.devices, split.batch_per_device) == (4, 8)
    multi = plan(2, 32, Distributed(nodes=2, devices=2, node_rank=1, master_addr="10.0.0.1"), env={})
    assert (multi.nodes, multi.devices, multi.world_size, multi.batch_per_device) == (2, 2, 4, 16)
    # inside torchrun: the layout comes from its environment, nothing is launched again
    inside = plan(1, 32, env=TORCHRUN_ENV)
    assert (inside.nodes, inside.devices, inside.rank, inside.needs_launch) == (2, 2, 1, False)
    assert not inside.is_global_zero


def test_impossible_layouts_name_the_fix():
    with pytest.raises(ConfigError, match="pass -p mini_batch_size=32"):
        plan(1, 30, Distributed(devices=4), env={})
    with pytest.raises(ConfigError, match="`instance_count` is 3 but --nodes is 2"):
        plan(3, 32, Distributed(nodes=2), env={})
    with pytest.raises(ConfigError, match="--master-addr HOST"):
        plan(1, 32, Distributed(nodes=2, node_rank=0), env={})
    with pytest.raises(ConfigError, match="--node-rank"):
        plan(1, 32, Distributed(nodes=2, master_addr="10.0.0.1"), env={})
    with pytest.raises(ConfigError, match="torchrun started 4 processes"):
        plan(1, 32, Distributed(devices=1), env=TORCHRUN_ENV)


def test_two_process_ddp_on_cpu_keeps_replicas_identical(tiny_split, tmp_path):
    out = tmp_path / "runs" / "ddp"
    params = [x for k, v in {**TINY, "epochs": "1", "instance_count": "2"}.items() for x in ("-p", f"{k}={v}")]
    command = [sys.executable, "-c", "from oculi.cli import main; main()", "train", "image-classification",
               "--train", str(tiny_split["train"]), "--validation", str(tiny_split["validation"]), *params,
               "--output", str(out), "--no-progress"]
    env = {**os.environ, "OCULI_HOME": str(tmp_path / "home")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "2 processes (1 machine(s) × 2), DDP over gloo" in log and "global batch 16" in log

    # gradients were synchronised: both ranks hold the same weights after their steps on different shards
    replicas = json.loads((out / "replicas.json").read_text())
    assert replicas["world_size"] == 2 and replicas["in_sync"]
    assert replicas["steps"] == 3  # each rank trained on its own half: 48 images / 2 ranks / 8 per step
    assert len(replicas["checksums"]) == 2 and replicas["checksums"][0] == replicas["checksums"][1]
    # … and they are the weights in the bundle (one epoch: the best epoch is the last)
    meta = read_meta(out)
    names = {n for n, _ in get_algorithm("image-classification").model_from_meta(meta).named_parameters()}
    saved = load_file(str(out / "weights.safetensors"))
    assert weights_checksum((n, t) for n, t in saved.items() if n in names) == replicas["checksums"][0]

    # only rank 0 printed and wrote: one bundle, one epoch row, one summary
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("model.json")] == [Path("runs/ddp/model.json")]
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 2
    assert log.count("training image-classification for 1 epoch") == 1 and log.count("model bundle:") == 1
    assert meta["hyperparameters"]["instance_count"] == 2
    assert 0.0 <= meta["metrics"]["validation:accuracy"] <= 1.0 and meta["dataset"]["train_images"] == 48
