"""Model-assisted labeling: pre-labels from a model bundle, the uncertainty queue, and automated labeling as Ground
Truth does it.

- :func:`prelabel`: the model's prediction of every unlabeled item becomes its editable proposal, and the item's
  queue priority becomes the model's uncertainty (the task contract's ``propose`` hook: classification margin or
  entropy, detection scores near the threshold, segmentation mean pixel entropy), so people label where it helps
  most.
- :func:`auto_label`: train the task's built-in algorithm as an ordinary training job on part of the human labels,
  measure on the held-out rest the confidence above which the model's labels meet ``accuracy``, write the unlabeled
  items above it as machine labels (``human-annotated: no``, with their confidence) and queue the rest by
  uncertainty. Run it again as more human labels arrive."""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from oculi.errors import ConfigError, JobError
from oculi.jobs.store import JobStore
from oculi.labeling import jobs
from oculi.labeling.masks import load_values, mask_path, proposal_path, save_mask

MIN_HUMAN = 10  # human labels needed before a round of automated labeling
# the target must hold for the accuracy's one-sided 95 % Wilson lower bound. On the bees (bench/labeling_bees.py,
# 50 human labels) a threshold certified by 7 of 7 held-out items (no bound) machine-labeled 142 images of which 61 %
# were right; by 6 of 6 at one standard error (z = 1, 0.857 ≥ a 0.8 target), 162 images of which 64 % were right
BOUND_Z = 1.645
BATCH = 32


def _proposals(predictor: Any, contract: Any, items: list[dict[str, Any]], threshold: float,
               **options: Any) -> list[Any]:
    out = []
    for start in range(0, len(items), BATCH):
        images = [Path(i["source"]["image"]) for i in items[start:start + BATCH]]
        out += contract.propose(predictor, images, threshold, **options)
    return out


def _load(job: dict[str, Any], model: str | Path) -> tuple[Any, Any]:
    from oculi.tasks import get_task, load_predictor, task_of

    predictor = load_predictor(model, precision="float32")
    contract = task_of(predictor)
    if contract.name != job["task"]:
        raise ConfigError(f"model {model} is a {contract.name} model; labeling job {job['name']!r} is a {job['task']} "
                          "job. Pick a bundle of the same task.")
    categories = job["spec"]["categories"]
    if predictor.classes != categories:
        raise ConfigError(f"model {model} has classes {', '.join(predictor.classes)}; job {job['name']!r} has "
                          f"{', '.join(categories)}. Pre-labels need the same classes in the same order.")
    return predictor, get_task(job["task"])


def prelabel(name: str, model: str | Path, *, threshold: float = 0.5, measure: str = "margin",
             store: JobStore | None = None) -> int:
    """Give every unlabeled item of job ``name`` the model's proposal and its uncertainty as queue priority.
    ``threshold``: detection's decision threshold; ``measure``: classification's ``margin`` or ``entropy``.
    Returns how many items were pre-labeled."""
    store = store or JobStore()
    job = jobs.labeling_job_open(store, name)
    predictor, contract = _load(job, model)
    items = store.labeling_items(name, ("unlabeled",))
    options = {"measure": measure} if jobs.kind_of(job).name == "class" else {}
    proposals = _proposals(predictor, contract, items, threshold, **options)
    rows = []
    for item, proposal in zip(items, proposals, strict=True):
        if proposal.mask is not None:
            save_mask(proposal.mask, proposal_path(jobs.output_dir(job), item["idx"]), len(job["spec"]["categories"]))
        rows.append({"idx": item["idx"], "proposal": {**proposal.label, "confidence": round(proposal.confidence, 4),
                                                      "model": str(model)},
                     "priority": float(proposal.uncertainty)})
    store.set_labels(name, rows)
    return len(rows)


def _held_out(idx: int, fraction: float, round_: int) -> bool:
    digest = hashlib.sha256(f"{idx}:{round_}".encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < fraction


def accuracy_lower_bound(hits: int, count: int, z: float = BOUND_Z) -> float:
    """The lower end of the Wilson score interval of ``hits / count`` (``z`` standard errors): an accuracy measured on
    few items is trusted only as far as its sample allows (7 of 7 right gives 0.72, 11 of 11 gives 0.80, 52 of 52
    gives 0.95)."""
    if count == 0:
        return 0.0
    p = hits / count
    centre = p + z * z / (2 * count)
    spread = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count))
    return (centre - spread) / (1 + z * z / count)


def items_to_certify(accuracy: float) -> int:
    """The fewest held-out items that can certify ``accuracy`` (< 1): all of them right, by the lower bound (0.8 →
    11, 0.95 → 52)."""
    count = 1
    while accuracy_lower_bound(count, count) < accuracy:
        count += 1
    return count


def pick_threshold(confidences: list[float], correct: list[bool], accuracy: float,
                   min_count: int = 3) -> tuple[float | None, float | None, int]:
    """The lowest confidence ``t`` such that the held-out items with confidence ≥ ``t`` are at least ``accuracy``
    correct *by the lower bound of their measured accuracy* (:func:`accuracy_lower_bound`: a handful of lucky items
    cannot certify a target) and at least ``min_count`` of them; returns ``(t, their measured accuracy, their
    count)`` or ``(None, None, 0)`` when no threshold reaches the target."""
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    best: tuple[float | None, float | None, int] = (None, None, 0)
    hits = 0
    for rank, i in enumerate(order, 1):
        hits += correct[i]
        tie = rank < len(order) and confidences[order[rank]] == confidences[i]
        if not tie and rank >= min_count and accuracy_lower_bound(hits, rank) >= accuracy:
            best = (confidences[i], hits / rank, rank)
    return best


def default_algorithm(task: str) -> str:
    """The first registered built-in algorithm of ``task``."""
    from oculi.algorithms import ALGORITHMS

    for name in ALGORITHMS:
        if ALGORITHMS.get(name).task == task:
            return name
    raise ConfigError(f"no built-in algorithm trains {task} models.")


def auto_label(name: str, *, accuracy: float = 0.95, holdout: float = 0.25, algorithm: str | None = None,
               hyperparameters: dict[str, Any] | None = None, threshold: float = 0.5, min_human: int = MIN_HUMAN,
               store: JobStore | None = None, echo: Any = None) -> dict[str, Any]:
    """One round of automated labeling on job ``name`` (see the module docstring). ``accuracy``: the target the
    machine labels must meet on held-out human labels (Ground Truth's ``--auto-label-accuracy``); ``holdout``: the
    share of human labels held out to measure it; ``algorithm``/``hyperparameters``: the training job's (default
    the task's first built-in algorithm, its defaults). Returns the round's record (also in ``describe``'s
    ``AutomatedLabeling``)."""
    from oculi.jobs import runner
    from oculi.jobs.runner import JobSpec, run_attached
    from oculi.tasks import load_predictor

    if not 0 < accuracy < 1 or not 0 < holdout < 1:
        raise ConfigError(f"--auto-label-accuracy and the holdout must be in (0, 1) (no finite sample proves an "
                          f"accuracy of 1; try 0.99); got {accuracy}, {holdout}.")
    store = store or JobStore()
    job = jobs.labeling_job_open(store, name)
    kind, out = jobs.kind_of(job), jobs.output_dir(job)
    rounds = list((job["stats"] or {}).get("rounds", []))
    round_ = len(rounds) + 1
    human = store.labeling_items(name, ("human",))
    if len(human) < min_human:
        raise JobError(f"labeling job {name!r} has {len(human)} human labels; automated labeling needs at least "
                       f"{min_human}. Label more images first.")
    held = [i for i in human if _held_out(i["idx"], holdout, round_)]
    if len(held) < 3 or len(held) == len(human):
        held = human[:: max(2, round(1 / holdout))]
    held_ids = {i["idx"] for i in held}
    folder = out / "auto" / f"round-{round_}"
    train_manifest = jobs.write_manifest(folder / "train.manifest",
                                         [i for i in human if i["idx"] not in held_ids], job, local=True)
    algorithm = algorithm or default_algorithm(job["task"])
    spec = JobSpec(algorithm=algorithm, channels={"train": str(train_manifest)},
                   hyperparameters={"label_attribute": job["label_attribute"],  # input lines may carry others
                                    **{k: str(v) for k, v in (hyperparameters or {}).items()}},
                   name=f"{name}-auto-{round_}-{int(time.time())}"[:63])
    training = runner.submit(spec, store, attached=True)
    finished = run_attached(training, store, echo=echo or (lambda _line: None))
    if finished["status"] != "Completed":
        raise JobError(f"automated labeling's training job {training['name']} ended {finished['status']}: "
                       f"{finished.get('failure_reason') or 'see oculi jobs logs ' + training['name']}")
    model = finished["model_dir"]
    predictor = load_predictor(model, precision="float32")
    from oculi.tasks import get_task

    contract = get_task(job["task"])
    measured = _proposals(predictor, contract, held, threshold)
    correct = []
    for item, proposal in zip(held, measured, strict=True):
        masks = None
        if proposal.mask is not None:
            masks = (proposal.mask, load_values(mask_path(out, item["idx"])))
        correct.append(bool(kind.agree(proposal.label, item["label"], masks=masks)))
    cut, measured_accuracy, support = pick_threshold([p.confidence for p in measured], correct, accuracy)
    now = time.time()
    leased = {i["idx"] for i in store.labeling_items(name, ("unlabeled",)) if i["lease_until"] > now}
    pending = [i for i in store.labeling_items(name, ("unlabeled",)) if i["idx"] not in leased]
    proposals = _proposals(predictor, contract, pending, threshold)
    rows, machine = [], 0
    for item, proposal in zip(pending, proposals, strict=True):
        confident = cut is not None and proposal.confidence >= cut
        if proposal.mask is not None:
            target = mask_path(out, item["idx"]) if confident else proposal_path(out, item["idx"])
            save_mask(proposal.mask, target, len(job["spec"]["categories"]))
        if confident:
            machine += 1
            rows.append({"idx": item["idx"], "label": proposal.label, "state": "machine",
                         "confidence": round(proposal.confidence, 4), "labeled_at": now, "worker": "auto"})
        else:
            rows.append({"idx": item["idx"], "proposal": {**proposal.label, "confidence": round(proposal.confidence, 4),
                                                          "model": str(model)},
                         "priority": float(proposal.uncertainty)})
    store.set_labels(name, rows)
    record = {"round": round_, "algorithm": algorithm, "training_job": training["name"], "model": str(model),
              "target": accuracy, "human_labels": len(human), "held_out": len(held),
              "needed": items_to_certify(accuracy),
              "held_out_accuracy": round(sum(correct) / len(correct), 4) if correct else None,
              "threshold": None if cut is None else round(cut, 4),
              "measured_accuracy": None if measured_accuracy is None else round(measured_accuracy, 4),
              "measured_on": support, "machine_labeled": machine, "sent_to_people": len(pending) - machine,
              "time": now}
    store.update_labeling(name, stats={**(job["stats"] or {}), "rounds": [*rounds, record]})
    jobs.export(name, store=store)
    return record


def machine_accuracy(truth: dict[int, dict[str, Any]], name: str, store: JobStore | None = None) -> tuple[float, int]:
    """The share of job ``name``'s machine labels that agree with ``truth`` (``{idx: label}``, e.g. held-back
    human labels; masks are compared through their files when ``truth`` values carry ``"mask"`` arrays)."""
    store = store or JobStore()
    job = store.labeling_job(name)
    kind, out = jobs.kind_of(job), jobs.output_dir(job)
    items = [i for i in store.labeling_items(name, ("machine",)) if i["idx"] in truth]
    hits = 0
    for item in items:
        expected = truth[item["idx"]]
        masks = None
        if isinstance(expected, dict) and expected.get("mask") is not None:
            masks = (load_values(mask_path(out, item["idx"])), np.asarray(expected["mask"]))
        hits += bool(kind.agree(item["label"], expected, masks=masks))
    return (hits / len(items) if items else 1.0), len(items)


def _running_file(job: dict[str, Any]) -> Path:
    return jobs.output_dir(job) / "auto" / "running.json"


def start_auto_label(name: str, *, accuracy: float = 0.95, hyperparameters: dict[str, str] | None = None,
                     store: JobStore | None = None) -> dict[str, Any]:
    """Start one round of :func:`auto_label` in the background (``oculi label auto`` in its own process session,
    so it outlives a closed console; its output goes to ``OUTPUT/auto/round-N.log``); the console's button. Returns
    the background task's record. Refuses while a round runs, and checks what ``auto_label`` would refuse first
    (too few human labels, a bad target) so the error comes at once."""
    from oculi.processes import start_recorded

    store = store or JobStore()
    job = jobs.labeling_job_open(store, name)
    if not 0 < accuracy < 1:
        raise ConfigError(f"the target accuracy must be in (0, 1) (no finite sample proves an accuracy of 1; try "
                          f"0.99); got {accuracy}.")
    if auto_label_running(job) is not None:
        raise JobError(f"a round of automated labeling already runs on {name!r}; wait for it to finish.")
    human = len(store.labeling_items(name, ("human",)))
    if human < MIN_HUMAN:
        raise JobError(f"labeling job {name!r} has {human} human labels; automated labeling needs at least "
                       f"{MIN_HUMAN}. Label more images first.")
    round_ = len((job["stats"] or {}).get("rounds", [])) + 1
    command = ["oculi.cli", "label", "auto", name, "--auto-label-accuracy", str(accuracy)]
    for key, value in (hyperparameters or {}).items():
        command += ["-p", f"{key}={value}"]
    return start_recorded(command, jobs.output_dir(job) / "auto" / f"round-{round_}.log", _running_file(job),
                          round=round_, accuracy=accuracy, hyperparameters=hyperparameters or {})


def auto_label_running(job: dict[str, Any]) -> dict[str, Any] | None:
    """The background round of labeling job ``job`` (a store record) while its process lives — pid, round, log
    and the log's last lines as ``tail`` — else None."""
    from oculi.processes import read_recorded

    state = read_recorded(_running_file(job))
    return state if state and state["running"] else None


def last_auto_label_failure(job: dict[str, Any]) -> str | None:
    """The end of the last background round's log when that round ended without recording its result (a failed
    training job, an error), else None."""
    from oculi.processes import read_recorded

    state = read_recorded(_running_file(job), lines=6)
    if state is None or state["running"] or len((job["stats"] or {}).get("rounds", [])) >= state.get("round", 0):
        return None
    return state["tail"] or "the round ended without a result."
