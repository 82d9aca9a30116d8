"""Distributed data-parallel training: Lightning's DDP strategy in processes started by torchrun.

``train()`` asks :func:`plan` how many processes a run needs. With more than one, and when it is not already
running under torchrun, it hands the run to :func:`launch`, which starts ``python -m torch.distributed.run …
-m oculi.engine.distributed SPEC.json`` and waits; every process (rank) then runs ``train()`` again, now inside
torchrun, with Lightning's ``DDPStrategy`` (gloo on CPU, NCCL on GPU). Only rank 0 prints, writes ``metrics.csv``
and the model bundle; at the end the ranks compare their weights (``replicas.json``).

Vocabulary (SageMaker's, ``docs/sagemaker-contracts.md``): an *instance* is a machine; ``mini_batch_size`` is what
each instance trains on per step, split across its devices (so the global batch is ``instances ×
mini_batch_size``).

- ``-p instance_count=N`` alone simulates N instances on this machine: N processes, one device each.
- ``--devices D`` runs D processes on this machine (one instance whose batch is split D ways).
- ``--nodes N --devices D`` on each of N machines: torchrun's static rendezvous at ``--master-addr`` /
  ``--master-port`` (or ``MASTER_ADDR`` / ``MASTER_PORT``), each machine with its own ``--node-rank`` (or
  ``NODE_RANK``) 0…N-1.
- Under your own ``torchrun`` (``torchrun --nproc-per-node 2 -m oculi.cli train …``) the layout comes from
  torchrun's environment and nothing is launched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from oculi import errors
from oculi.errors import ConfigError, JobError
from oculi.processes import die_with_parent

DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True)
class Distributed:
    """Where the processes of a distributed run go (the CLI's ``--nodes``, ``--devices``, ``--node-rank``,
    ``--master-addr``, ``--master-port``). ``None`` = not given (environment variables or defaults apply)."""

    nodes: int | None = None
    devices: int | None = None
    node_rank: int | None = None
    master_addr: str | None = None
    master_port: int | None = None


def inside_torchrun(env: Mapping[str, str] = os.environ) -> bool:
    """True in a process that torchrun (or an equivalent launcher) started: its rank variables are set."""
    return all(k in env for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"))


@dataclass(frozen=True)
class Plan:
    """A resolved layout: ``nodes`` machines × ``devices`` processes each (torchrun's ``--nnodes`` /
    ``--nproc-per-node``); ``instances`` SageMaker instances of ``devices_per_instance`` devices;
    ``batch_per_device`` images per process per step; ``rank`` = this process's global rank."""

    nodes: int
    devices: int
    instances: int
    devices_per_instance: int
    batch_per_device: int
    accelerator: str
    backend: str
    inside: bool
    rank: int
    options: Distributed

    @property
    def world_size(self) -> int:
        """Processes in all: ``nodes × devices``."""
        return self.nodes * self.devices

    @property
    def needs_launch(self) -> bool:
        """True when this process must start torchrun (several processes, not yet inside torchrun)."""
        return self.world_size > 1 and not self.inside

    @property
    def is_global_zero(self) -> bool:
        """True in the process that prints and writes (rank 0; the only one without DDP)."""
        return self.rank == 0

    def describe(self, mini_batch_size: int) -> str:
        """One line saying the layout and the batch split, for the run's output."""
        return (f"distributed: {self.world_size} processes ({self.nodes} machine(s) × {self.devices}), DDP over "
                f"{self.backend}; mini_batch_size {mini_batch_size} per instance → {self.batch_per_device} per "
                f"process, global batch {self.batch_per_device * self.world_size}")

    def trainer_options(self) -> dict[str, Any]:
        """``lightning.Trainer`` keyword arguments for this layout."""
        if self.world_size == 1:
            return {"accelerator": "auto", "devices": 1}
        from lightning.pytorch.strategies import DDPStrategy

        return {"accelerator": self.accelerator, "devices": self.devices, "num_nodes": self.nodes,
                "strategy": DDPStrategy(process_group_backend=self.backend)}


def plan(instance_count: int, mini_batch_size: int, options: Distributed | None = None,
         env: Mapping[str, str] = os.environ) -> Plan:
    """Resolve ``instance_count`` and the CLI's options (and torchrun's environment, when inside it) into a
    :class:`Plan`. Conflicting or impossible settings raise a ConfigError that names both and the fix."""
    o = options or Distributed()
    inside = inside_torchrun(env)
    for name in ("nodes", "devices"):
        value = getattr(o, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} got {value}; expected an integer ≥ 1, e.g. --{name} 2.")
    if inside and o.nodes is None and o.devices is None and instance_count == 1:
        devices = int(env["LOCAL_WORLD_SIZE"])
        nodes = max(1, int(env["WORLD_SIZE"]) // devices)
        instances, per_instance = nodes, devices
    elif o.nodes is not None:
        if instance_count > 1 and instance_count != o.nodes:
            raise ConfigError(f"`instance_count` is {instance_count} but --nodes is {o.nodes}; an instance is a "
                              f"machine, so pass one of them (or the same number).")
        nodes, devices = o.nodes, o.devices or 1
        instances, per_instance = nodes, devices
    else:  # all on this machine: instance_count simulated instances of `devices` devices each
        per_instance = o.devices or 1
        instances, nodes, devices = instance_count, 1, instance_count * per_instance
    if mini_batch_size % per_instance:
        fixed = max(per_instance, round(mini_batch_size / per_instance) * per_instance)
        raise ConfigError(f"`mini_batch_size` ({mini_batch_size}) is split across the {per_instance} devices of "
                          f"each instance and must divide evenly; pass -p mini_batch_size={fixed}.")
    gpu = torch.cuda.is_available()
    if gpu and devices > 1 and devices > torch.cuda.device_count():
        raise ConfigError(f"{devices} processes on this machine need {devices} GPUs, but {torch.cuda.device_count()} "
                          f"are visible; pass --devices {torch.cuda.device_count()} (or fewer instances).")
    result = Plan(nodes=nodes, devices=devices, instances=instances, devices_per_instance=per_instance,
                  batch_per_device=mini_batch_size // per_instance, accelerator="gpu" if gpu else "cpu",
                  backend="nccl" if gpu else "gloo", inside=inside, rank=int(env.get("RANK", "0")) if inside else 0,
                  options=o)
    if inside and int(env["WORLD_SIZE"]) != result.world_size:
        raise ConfigError(f"torchrun started {env['WORLD_SIZE']} processes but the options ask for "
                          f"{result.world_size} ({nodes} node(s) × {devices}); make --nodes/--devices/instance_count "
                          "match torchrun's --nnodes/--nproc-per-node, or leave them out under torchrun.")
    if result.needs_launch and nodes > 1:
        if not (o.master_addr or env.get("MASTER_ADDR")):
            raise ConfigError(f"--nodes {nodes} needs the address of node 0: pass --master-addr HOST (and "
                              "--master-port PORT, default 29500) on every machine, or set MASTER_ADDR.")
        rank = o.node_rank if o.node_rank is not None else env.get("NODE_RANK")
        if rank is None or not 0 <= int(rank) < nodes:
            raise ConfigError(f"--nodes {nodes} needs this machine's --node-rank (0 … {nodes - 1}; 0 on the "
                              f"--master-addr machine), got {rank}; or set NODE_RANK.")
    return result


def weights_checksum(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 (16 hex digits) over names and raw bytes of ``named`` tensors, in name order; any dtype or
    memory format (tensors are made contiguous on CPU first)."""
    h = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def check_replicas(plan: Plan, steps: int, model: torch.nn.Module, out: Path, echo: Callable[[str], None]) -> None:
    """After DDP training: gather every rank's parameter checksum; rank 0 writes ``out/replicas.json``
    (``{"world_size", "steps": optimizer steps per rank, "checksums": [per rank], "in_sync"}``). Replicas that
    differ raise a JobError (it means gradients were not synchronised, e.g. a parameter outside DDP's reach)."""
    if plan.world_size == 1 or not torch.distributed.is_initialized():
        return
    digest = weights_checksum(model.named_parameters())
    gathered: list[Any] = [None] * plan.world_size
    torch.distributed.all_gather_object(gathered, digest)
    in_sync = len(set(gathered)) == 1
    if plan.is_global_zero:
        report = {"world_size": plan.world_size, "steps": steps, "checksums": gathered, "in_sync": in_sync}
        (out / "replicas.json").write_text(json.dumps(report, indent=2) + "\n")
        echo(f"{plan.world_size} replicas {'in sync' if in_sync else 'DIFFER'}: weights checksum "
             + ", ".join(sorted(set(gathered))))
    if not in_sync:
        raise JobError(f"The {plan.world_size} DDP replicas ended with different weights ({', '.join(gathered)}); "
                       "gradients were not synchronised. Report this with the run's output.")


def launch(plan: Plan, *, algorithm: str, channels: Mapping[str, Any], hyperparameters: Mapping[str, Any] | None,
           recipe: Mapping[str, Any] | None, output: Path, init_model: Path | None,
           image_roots: Mapping[str, Path] | None, overwrite: bool, echo: Callable[[str], None],
           checkpoint_dir: Path | None = None, resume_from: Path | str | None = None, restart_schedule: bool = False,
           stop_requested: Callable[[], bool] | None = None, callbacks: Iterable[Any] = ()) -> Any:
    """Run ``train()`` in ``plan.devices`` processes on this machine through torchrun (the other machines of a
    multi-node run launch their own), wait, and return rank 0's :class:`~oculi.engine.training.TrainResult`
    (read back from the bundle). The processes' output goes line by line to ``echo``.

    ``checkpoint_dir``, ``resume_from`` and ``restart_schedule`` are passed to every rank (rank 0 writes the
    checkpoints). ``stop_requested`` is polled here five times a second; once true, a stop file tells the ranks,
    which agree on a step, checkpoint and stop (``TrainResult.stopped``). ``callbacks`` are
    :class:`~oculi.engine.callbacks.CallbackFactory` objects, built in every rank.

    torchrun dies with this process (and the ranks with torchrun), so a launcher killed with ``kill -9`` leaves no
    training behind. An OculiError in a rank is raised again here with its message (without torchrun's failure
    report); any other failure is a JobError after that report."""
    from oculi.artifacts import read_meta
    from oculi.engine.training import TrainResult

    started = time.perf_counter()
    kwargs = {"algorithm": algorithm, "channels": {k: str(v) for k, v in channels.items()},
              "hyperparameters": dict(hyperparameters or {}), "recipe": dict(recipe) if recipe else None,
              "output": str(output), "init_model": str(init_model) if init_model else None,
              "image_roots": {k: str(v) for k, v in image_roots.items()} if image_roots else None,
              "overwrite": overwrite, "progress": False,
              "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None,
              "resume_from": str(resume_from) if resume_from else None, "restart_schedule": restart_schedule}
    o = plan.options
    with tempfile.TemporaryDirectory(prefix="oculi-ddp-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({
            "kwargs": kwargs, "distributed": asdict(o), "errors": tmp,
            "callbacks": [{"target": c.target, "kwargs": c.kwargs} for c in callbacks],
            "stop_file": str(Path(tmp) / "stop") if stop_requested else None}))
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(plan.nodes),
                   "--nproc-per-node", str(plan.devices)]
        if plan.nodes == 1:
            command.append("--standalone")  # a free local port, no address to give
        else:
            command += ["--node-rank", str(o.node_rank if o.node_rank is not None else os.environ["NODE_RANK"]),
                        "--master-addr", o.master_addr or os.environ["MASTER_ADDR"],
                        "--master-port", str(o.master_port or os.environ.get("MASTER_PORT", DEFAULT_MASTER_PORT))]
        command += ["-m", "oculi.engine.distributed", str(spec)]
        env = dict(os.environ)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // plan.devices)))  # no oversubscribed cores
        env["PYTHONUNBUFFERED"] = "1"  # the ranks' lines arrive as they are printed
        echo(f"launching {plan.devices} process(es) on this machine"
             + (f" (node {command[command.index('--node-rank') + 1]} of {plan.nodes})" if plan.nodes > 1 else "")
             + ": " + " ".join(command[:command.index("-m", 3)]) + " …")
        code, held = _run_forwarding(command, env, echo, stop_requested, Path(tmp) / "stop")
        error = _first_error(Path(tmp))
        if error is None and held:  # torchrun's own failure report matters only when no rank said why
            echo("".join(held).rstrip("\n"))
        outcome_file = Path(tmp) / "result.json"
        outcome = json.loads(outcome_file.read_text()) if outcome_file.exists() else {}
    if error is not None:
        kind = getattr(errors, error["type"], None)
        kind = kind if isinstance(kind, type) and issubclass(kind, errors.OculiError) else JobError
        raise kind(f"{error['message']}")
    if code != 0:
        raise JobError(f"Distributed training failed: torchrun exited with code {code}; the ranks' output above "
                       "says why.")
    node_rank = int(o.node_rank if o.node_rank is not None else os.environ.get("NODE_RANK", 0)) \
        if plan.nodes > 1 else 0
    if node_rank != 0:
        note = f"this machine was node {node_rank} of {plan.nodes}; node 0 wrote the model bundle"
        echo(note)
        return TrainResult(model_dir=output, metrics={}, best_epoch=None, history=[], hyperparameters={},
                           classes=[], seconds=time.perf_counter() - started, notes=[note],
                           stopped=bool(outcome.get("stopped")))
    if not (output / "model.json").exists():
        raise JobError(f"Distributed training ended without a model bundle in {output}; node 0 writes it.")
    meta = read_meta(output)
    return TrainResult(model_dir=output, metrics=dict(meta.get("metrics", {})), best_epoch=meta.get("best_epoch"),
                       history=list(meta.get("history", [])), hyperparameters=meta["hyperparameters"],
                       classes=list(meta["classes"]), seconds=time.perf_counter() - started,
                       stopped=bool(outcome.get("stopped")), resumed_from=outcome.get("resumed_from"),
                       checkpoint=outcome.get("checkpoint"))


def _run_forwarding(command: list[str], env: dict[str, str], echo: Callable[[str], None],
                    stop_requested: Callable[[], bool] | None, stop_file: Path) -> tuple[int, list[str]]:
    """Run torchrun, passing the ranks' output (merged) to ``echo`` line by line; torchrun's own log lines and
    its failure report (from its "failed (exitcode" line on) are held back and returned. While it runs, a
    thread turns ``stop_requested()`` into ``stop_file`` for the ranks."""
    import threading

    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", bufsize=1, preexec_fn=die_with_parent)
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.2):
            if stop_requested is not None and stop_requested():
                stop_file.touch()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    if stop_requested is not None:
        watcher.start()
    held: list[str] = []
    failed = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            agent = "torch/distributed/elastic/" in line  # torchrun's own log lines
            failed = failed or (agent and "failed (exitcode" in line)
            if failed or agent:
                held.append(line)
                continue
            echo(line.rstrip("\n"))
        return proc.wait(), held
    except BaseException:
        proc.terminate()  # torchrun passes SIGTERM on to the ranks
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        finished.set()


def _first_error(folder: Path) -> dict[str, Any] | None:
    files = sorted(folder.glob("error-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return json.loads(files[0].read_text()) if files else None


def _worker(spec_path: str) -> int:
    """One rank: run ``train()`` with the launcher's arguments. Rank 0 writes ``result.json`` (stopped, resumed
    from, stop checkpoint) for the launcher; an OculiError is written for it as ``error-<rank>.json``."""
    from oculi.engine.callbacks import CallbackFactory
    from oculi.engine.training import train

    spec = json.loads(Path(spec_path).read_text())
    die_with_parent()  # with torchrun, which dies with the launcher
    kwargs = spec["kwargs"]
    if kwargs.get("image_roots"):
        kwargs["image_roots"] = {k: Path(v) for k, v in kwargs["image_roots"].items()}
    stop_file = Path(spec["stop_file"]) if spec.get("stop_file") else None
    rank = os.environ.get("RANK", "0")
    try:
        result = train(**kwargs, distributed=Distributed(**spec["distributed"]),
                       stop_requested=stop_file.exists if stop_file else None,
                       callbacks=[CallbackFactory(c["target"], c["kwargs"]) for c in spec.get("callbacks", [])])
    except errors.OculiError as e:
        Path(spec["errors"], f"error-{rank}.json").write_text(json.dumps({"type": type(e).__name__,
                                                                          "message": str(e)}))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    if os.environ.get("LOCAL_RANK", "0") == "0":  # this machine's launcher reads it
        Path(spec["errors"], "result.json").write_text(json.dumps({
            "stopped": result.stopped, "resumed_from": result.resumed_from, "checkpoint": result.checkpoint}))
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
