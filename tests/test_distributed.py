"""Distributed training: layouts and their errors (no processes); a real 2-process DDP run on CPU (gloo) through
the CLI and torchrun, checking that both ranks end with identical weights and only one bundle is written; and the
same run as a detached job that is stopped mid-epoch, killed with kill -9 and resumed, ending with the very weights
of the uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from oculi.algorithms import get_algorithm
from oculi.artifacts import read_meta
from oculi.engine.distributed import Distributed, plan, weights_checksum
from oculi.errors import ConfigError, JobError
from oculi.jobs import runner
from oculi.jobs.runner import JobSpec
from oculi.jobs.store import JobStore
from tests.helpers import TINY
from tests.jobs.conftest import until

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


DDP_HP = {**TINY, "epochs": "6", "instance_count": "2"}


@pytest.fixture(scope="module")
def ddp_reference(tiny_split, tmp_path_factory):
    """An uninterrupted 2-process run through the CLI (an attached job): (output folder, its output, OCULI_HOME)."""
    tmp = tmp_path_factory.mktemp("ddp-reference")
    out = tmp / "runs" / "ddp"
    params = [x for k, v in DDP_HP.items() for x in ("-p", f"{k}={v}")]
    command = [sys.executable, "-c", "from oculi.cli import main; main()", "train", "image-classification",
               "--train", str(tiny_split["train"]), "--validation", str(tiny_split["validation"]), *params,
               "--output", str(out), "--no-progress", "--name", "ddp-reference"]
    env = {**os.environ, "OCULI_HOME": str(tmp / "home")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    return out, log, tmp / "home"


def test_two_process_ddp_on_cpu_keeps_replicas_identical(ddp_reference, tmp_path):
    out, log, home = ddp_reference
    assert "2 processes (1 machine(s) × 2), DDP over gloo" in log and "global batch 16" in log

    # gradients were synchronised: both ranks hold the same weights after their steps on different shards
    replicas = json.loads((out / "replicas.json").read_text())
    assert replicas["world_size"] == 2 and replicas["in_sync"]
    assert replicas["steps"] == 3 * 6  # each rank trained on its own half: 48 images / 2 ranks / 8 per step
    assert len(replicas["checksums"]) == 2 and replicas["checksums"][0] == replicas["checksums"][1]
    # … and they are the weights in the bundle when the last epoch is the best; the bundle holds the best epoch's
    meta = read_meta(out)
    names = {n for n, _ in get_algorithm("image-classification").model_from_meta(meta).named_parameters()}
    saved = load_file(str(out / "weights.safetensors"))
    if meta["best_epoch"] == 6:
        assert weights_checksum((n, t) for n, t in saved.items() if n in names) == replicas["checksums"][0]

    # only rank 0 printed and wrote: one bundle, one row per epoch, one summary
    assert [p.relative_to(out.parents[1]) for p in out.parents[1].rglob("model.json")] == [Path("runs/ddp/model.json")]
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 1 + 6
    assert log.count("training image-classification for 6 epoch") == 1 and log.count("model bundle:") == 1
    assert meta["hyperparameters"]["instance_count"] == 2
    assert 0.0 <= meta["metrics"]["validation:accuracy"] <= 1.0 and meta["dataset"]["train_images"] == 48
    # the run is a job in the store, with its per-epoch metrics
    job = JobStore(f"sqlite:///{home / 'oculi.db'}").get("ddp-reference")
    assert job["secondary_status"] == "Completed" and job["spec"]["hyperparameters"]["instance_count"] == "2"


def _processes_of(home: Path) -> list[int]:
    """Pids of the processes whose environment has OCULI_HOME=home (the worker, torchrun and the ranks)."""
    mark = f"OCULI_HOME={home}".encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark in (proc / "environ").read_bytes() + b"\0" and int(proc.name) != os.getpid():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_distributed_job_stop_kill_9_and_exact_resume(ddp_reference, tiny_split, oculi_home):
    reference_out, _, _ = ddp_reference
    store = JobStore()
    spec = JobSpec(algorithm="image-classification", channels={k: str(v) for k, v in tiny_split.items()},
                   hyperparameters=DDP_HP, name="ddp-job")
    runner.submit(spec, store)
    assert runner.dispatch(store) == ["ddp-job"]
    # a stop while the worker is still starting: the ranks find the stop file at their first step, agree on it,
    # checkpoint there (mid-epoch: step 1 of epoch 1, so the resume must skip exactly that batch on each rank)
    runner.stop("ddp-job", store)
    stopped = runner.wait("ddp-job", store, timeout=600, poll=0.1)
    assert stopped["secondary_status"] == "Stopped", stopped["failure_reason"]
    at = stopped["checkpoint"]
    assert at["mid_epoch"] and (at["epoch"], at["step"]) == (0, 1), at
    log = Path(stopped["log_path"]).read_text()
    assert "stop requested: checkpoint written at epoch 1, step 1" in log and "2 replicas in sync" in log

    # resume; kill -9 the worker once that attempt has checkpointed epoch 1: torchrun and both ranks die with it
    runner.resume("ddp-job", store=store)
    runner.dispatch(store)
    until(lambda: (store.get("ddp-job")["checkpoint"] or {}).get("epoch", 0) >= 1, timeout=600, poll=0.05,
          what="epoch 1 after the resume")
    os.kill(store.get("ddp-job")["pid"], signal.SIGKILL)
    until(lambda: not _processes_of(oculi_home), timeout=20, what="the worker, torchrun and the ranks to exit")
    runner.dispatch(store)
    dead = store.get("ddp-job")
    assert dead["secondary_status"] == "Failed" and "worker process died" in dead["failure_reason"]

    runner.resume("ddp-job", store=store)
    runner.dispatch(store)
    done = runner.wait("ddp-job", store, timeout=600)
    assert done["secondary_status"] == "Completed"
    log = Path(done["log_path"]).read_text()
    assert "resumed from epoch 0, step 1" in log
    # a mid-epoch stop, kill -9 and two resumes: the same final weights (checksum over every parameter, so the
    # tolerance is zero) and validation metrics (1e-6) as the uninterrupted run
    ours = json.loads((Path(done["model_dir"]) / "replicas.json").read_text())
    reference = json.loads((reference_out / "replicas.json").read_text())
    assert ours["in_sync"] and ours["checksums"] == reference["checksums"]
    expected = read_meta(reference_out)["history"][-1]
    for key in ("validation:accuracy", "validation:loss"):
        assert abs(done["final_metrics"][key] - read_meta(reference_out)["metrics"][key]) <= 1e-6, key
        assert abs(read_meta(Path(done["model_dir"]))["history"][-1][key] - expected[key]) <= 1e-6, key
    assert sorted({r["epoch"] for r in store.metrics("ddp-job")}) == [1, 2, 3, 4, 5, 6]


def test_a_multi_machine_job_is_recorded_but_not_resumable(tiny_split, oculi_home):
    store = JobStore()
    layout = {"nodes": 2, "devices": 1, "node_rank": 0, "master_addr": "10.0.0.1", "master_port": None}
    job = runner.submit(JobSpec(algorithm="image-classification", channels={k: str(v) for k, v in tiny_split.items()},
                                hyperparameters=TINY, name="two-machines", distributed=layout), store)
    assert job["spec"]["distributed"] == layout
    runner.stop("two-machines", store)  # still queued: stopped at once, nothing started
    with pytest.raises(JobError, match=r"multi-machine job is not supported \(node 0 alone holds the checkpoint"):
        runner.resume("two-machines", store=store)
