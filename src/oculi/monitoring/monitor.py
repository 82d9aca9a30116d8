"""Baselines and checks: :func:`baseline` measures a model's training data and writes SageMaker's
``statistics.json`` and suggested ``constraints.json`` (plus ``embeddings.safetensors`` and ``baseline.json``);
:func:`check` measures the images captured in a time window the same way and writes ``statistics.json``,
``constraint_violations.json`` (SageMaker's shape: ``feature_name``, ``constraint_check_type``, ``description``)
and ``drift.json`` (every test's p-value, Holm-adjusted p-value and effect size)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from oculi.errors import ConfigError, DataError
from oculi.monitoring import drift
from oculi.monitoring.capture import read_capture, write_images
from oculi.monitoring.features import (
    EMBEDDING_PASS,
    Features,
    measure,
    read_statistics,
    statistics_json,
    suggest_constraints,
)

BASELINE_IMAGES = 1000  # training images measured for a baseline (a seeded sample of larger sets)


def _write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def _load(model: str | Path) -> tuple[Any, Any]:
    from oculi.tasks import load_predictor, task_of

    predictor = load_predictor(model, precision="float32")
    return predictor, task_of(predictor)


def _progress(label: str, total: int, enabled: bool) -> Any:
    from oculi.analysis.audit import progress_bar

    return progress_bar(label, total, enabled)


def baseline(model: str | Path, data: str | Path, output: str | Path, *, sample: int = BASELINE_IMAGES,
             seed: int = 0, image_roots: dict[str, Path] | None = None, progress: bool = False,
             echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure up to ``sample`` images of ``data``'s training split (a dataset path as ``oculi train`` takes it)
    with ``model`` and write the baseline files to ``output``. Returns ``baseline.json``'s content."""
    from safetensors.numpy import save_file

    from oculi.analysis.audit import read_sets

    started = time.perf_counter()
    predictor, contract = _load(model)
    task, sets = read_sets([data], image_roots=image_roots)
    if task != contract.name:
        raise ConfigError(f"{data} holds {task} data; {model} is a {contract.name} model. Baseline a model with "
                          "the data it was trained on.")
    split = sets.get("train") or next(iter(sets.values()))
    paths = list(dict.fromkeys(s.image for s in split.samples))
    if len(paths) > sample:
        paths = [paths[i] for i in sorted(np.random.default_rng(seed).choice(len(paths), sample, replace=False))]
    with _progress("baseline", len(paths), progress) as advance:
        features = measure(predictor, contract, paths, advance=advance)
    if not features.images:
        raise DataError(f"{data}: none of its {len(paths)} images could be decoded; nothing to baseline.")
    out = Path(output)
    _write_json(out / "statistics.json", statistics_json(features, seed=seed))
    _write_json(out / "constraints.json", suggest_constraints(features))
    if features.embeddings.size:
        save_file({"embeddings": features.embeddings}, str(out / "embeddings.safetensors"))
    meta = predictor.bundle.meta
    training = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, int | float)}
    info = {"model": str(Path(model).resolve()), "task": contract.name, "classes": predictor.classes,
            "data": str(Path(data).resolve()), "images": len(features.images), "failed": features.failed,
            "metric": contract.metric, "training_metrics": training, "embedding": EMBEDDING_PASS,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(time.perf_counter() - started, 2)}
    _write_json(out / "baseline.json", info)
    if echo:
        echo(f"baseline of {len(features.images)} images in {info['seconds']:.1f} s → {out}")
    return info


def read_baseline(folder: str | Path) -> dict[str, Any]:
    """``baseline.json``, ``statistics.json`` and ``constraints.json`` of a baseline folder (and its embeddings
    under ``embeddings``, or None), with a clear error naming what is missing."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    out: dict[str, Any] = {}
    for name in ("baseline", "statistics", "constraints"):
        path = folder / f"{name}.json"
        if not path.is_file():
            raise DataError(f"{path} not found; make a baseline with `oculi monitor baseline MODEL --data DATA "
                            f"--output {folder}`.")
        try:
            out[name] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}); fix it or baseline again.") from e
    vectors = folder / "embeddings.safetensors"
    out["embeddings"] = load_file(str(vectors))["embeddings"] if vectors.is_file() else None
    return out


def compare(base: dict[str, Any], current: Features, *, seed: int = 0) -> tuple[list[dict[str, Any]],
                                                                             list[dict[str, Any]]]:
    """Compare a window's features with a baseline (:func:`read_baseline`): returns ``(tests, violations)``; each
    test ``{"feature", "test", "p_value", "p_adjusted", "effect", "flagged", …}``, each violation in
    SageMaker's shape. Violations: ``baseline_drift_check`` (adjusted p < alpha and effect ≥ the feature's
    ``min_effect``), ``categorical_values_check`` (values outside the baseline's domain),
    ``completeness_check`` (images that did not decode)."""
    constraints = base["constraints"]
    config = constraints.get("monitoring_config", {}).get("drift", {})
    alpha = float(config.get("alpha", 0.01))
    numeric, categorical = read_statistics(base["statistics"])
    by_name = {c["name"]: c for c in constraints.get("features", [])}
    tests: list[dict[str, Any]] = []
    violations: list[dict[str, Any]] = []
    for name, check in by_name.items():
        rule = check.get("drift_check", {})
        if rule.get("enabled", True) is False:
            continue
        if name in numeric and name in current.numeric and current.numeric[name] and numeric[name]:
            result = drift.ks_test(numeric[name], current.numeric[name])
        elif name in categorical and name in current.categorical:
            result = drift.chi2_test(categorical[name], current.categorical[name])
            domain = set(check.get("string_constraints", {}).get("domains", categorical[name]))
            outside = {k: v for k, v in current.categorical[name].items() if k not in domain}
            share_in = 1 - sum(outside.values()) / max(1, sum(current.categorical[name].values()))
            threshold = float(constraints.get("monitoring_config", {}).get("domain_content_threshold", 1.0))
            if share_in < threshold:
                violations.append({"feature_name": name, "constraint_check_type": "categorical_values_check",
                                   "description": f"{1 - share_in:.1%} of the values are outside the baseline's "
                                                  f"domain: {', '.join(sorted(outside))}"})
        else:
            continue
        tests.append({"feature": name, **result.to_dict(), "min_effect": float(rule.get("min_effect", 0.1))})
    embeddings = base.get("embeddings")
    emb_config = config.get("embedding", {})
    if embeddings is not None and emb_config.get("enabled", True) and current.embeddings.shape[0] >= 2:
        result = drift.mmd_test(embeddings, current.embeddings, permutations=int(emb_config.get("permutations", 500)),
                                seed=seed)
        tests.append({"feature": "embedding", **result.to_dict(), "min_effect": 0.0})
    for test, adjusted in zip(tests, drift.holm([t["p_value"] for t in tests]), strict=True):
        test["p_adjusted"] = adjusted
        test["flagged"] = adjusted < alpha and test["effect"] >= test["min_effect"]
        if test["flagged"]:
            what = {"ks": "KS distance", "chi2": "Cramér's V", "mmd": "MMD²"}[test["test"]]
            violations.append({"feature_name": test["feature"], "constraint_check_type": "baseline_drift_check",
                               "description": f"{test['feature']} drifted from the baseline: {what} "
                                              f"{test['effect']:.3g}, p = {test['p_value']:.2g} (Holm-adjusted "
                                              f"{adjusted:.2g} < {alpha}) over {test['current_n']} values"})
    completeness = float(config.get("completeness", 0.95))
    total = len(current.images) + len(current.failed)
    if total and len(current.images) / total < completeness:
        violations.append({"feature_name": "image", "constraint_check_type": "completeness_check",
                           "description": f"{len(current.failed)} of {total} captured images could not be "
                                          f"decoded (completeness {len(current.images) / total:.1%} < "
                                          f"{completeness:.0%})"})
    return tests, violations


def check(capture: str | Path, baseline_dir: str | Path, output: str | Path, *, endpoint: str | None = None,
          since: str | datetime | None = None, until: str | datetime | None = None, model: str | Path | None = None,
          seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Check the images captured in ``[since, until)`` against a baseline: writes ``statistics.json``,
    ``constraint_violations.json``, ``drift.json`` and the window's images (``images/<eventId>.*``) to ``output``.
    The baseline's model (or ``model``) measures the images. Returns ``drift.json``'s content."""
    started = time.perf_counter()
    base = read_baseline(baseline_dir)
    read = read_capture(capture, endpoint=endpoint, since=since, until=until)
    out = Path(output)
    paths = write_images(read.records, out / "images")
    min_images = int(base["constraints"].get("monitoring_config", {}).get("drift", {}).get("min_images", 20))
    tests: list[dict[str, Any]] = []
    violations: list[dict[str, Any]] = []
    notes: list[str] = []
    features = Features()
    if len(paths) < min_images:
        notes.append(f"{len(paths)} captured image(s) in the window, fewer than min_images={min_images}: no drift "
                     "test was run (widen the window or lower monitoring_config.drift.min_images)")
    else:
        predictor, contract = _load(model or base["baseline"]["model"])
        with _progress("check", len(paths), progress) as advance:
            # a baseline from before the shared pass holds embeddings of the separate pass: measure alike
            features = measure(predictor, contract, paths, advance=advance,
                               embedding=base["baseline"].get("embedding", "embedder"))
        tests, violations = compare(base, features, seed=seed)
    _write_json(out / "statistics.json", statistics_json(features, seed=seed))
    _write_json(out / "constraint_violations.json", {"violations": violations})
    window = {"since": str(since) if since else None, "until": str(until) if until else None}
    report = {"baseline": str(Path(baseline_dir).resolve()), "window": window, "endpoint": endpoint,
              "images": len(paths), "measured": len(features.images),
              "failed": features.failed, "bad_lines": read.bad_lines, "skipped_requests": read.skipped,
              "tests": tests, "violations": len(violations), "notes": notes,
              "events": [{"event_id": r.event_id, "inference_id": r.inference_id, "time": r.time.isoformat(),
                          "image": str(p)} for r, p in zip(read.records, paths, strict=True)],
              "seconds": round(time.perf_counter() - started, 2)}
    _write_json(out / "drift.json", report)
    return report


ID_KEYS = ("inferenceId", "inference-id", "inference_id", "eventId", "event-id", "event_id")
WINDOWS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def _window_seconds(window: str) -> int:
    try:
        return int(float(window[:-1]) * WINDOWS[window[-1]])
    except (KeyError, ValueError, IndexError):
        raise ConfigError(f"--window {window!r}: give a number and h, d or w, e.g. 1h, 1d, 7d.") from None


def read_ground_truth(path: str | Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Ground-truth labels by event or inference id, and the bad lines. A line is SageMaker's ground-truth record
    (``{"groundTruthData": {"data": "<label fields as JSON>", "encoding": "JSON"}, "eventMetadata": {"eventId":
    …}}``) or an augmented-manifest line (a labeling job's output) carrying ``inference-id`` / ``event-id``, or
    whose ``source-ref`` file is named after the event (as ``export-for-labeling`` names them)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ground-truth file not found.")
    labels: dict[str, dict[str, Any]] = {}
    bad: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if "groundTruthData" in record:
                data = record["groundTruthData"]["data"]
                fields = json.loads(data) if isinstance(data, str) else dict(data)
                meta = record.get("eventMetadata", {})
                key = meta.get("inferenceId") or meta["eventId"]
            else:
                fields = {k: v for k, v in record.items() if k not in ID_KEYS and k != "source-ref"}
                key = next((record[k] for k in ID_KEYS if k in record), None) or Path(record["source-ref"]).stem
            if not isinstance(fields, dict) or not fields:
                raise ValueError("no label fields")
        except (ValueError, KeyError, TypeError) as e:
            bad.append({"file": str(path), "line": number, "error": f"not a ground-truth record ({e})"})
            continue
        labels[str(key)] = fields
    return labels, bad


def quality(capture: str | Path, ground_truth: str | Path, baseline_dir: str | Path, output: str | Path, *,
            window: str = "1d", tolerance: float = 0.05, endpoint: str | None = None,
            since: str | datetime | None = None, until: str | datetime | None = None,
            model: str | Path | None = None) -> dict[str, Any]:
    """Model quality once labels come back: join ``ground_truth`` to the captured requests by inference id or
    event id (as SageMaker merges ground truth), score the baseline's model (or ``model``) on them per ``window``
    with the task's evaluator, and compare with the bundle's training-time figure: a window more than
    ``tolerance`` below it is a violation. Writes ``quality.json`` and ``constraint_violations.json``."""
    base = read_baseline(baseline_dir)
    labels, bad = read_ground_truth(ground_truth)
    read = read_capture(capture, endpoint=endpoint, since=since, until=until)
    out = Path(output)
    predictor, contract = _load(model or base["baseline"]["model"])
    metric = contract.metric
    reference = base["baseline"].get("training_metrics", {}).get(f"validation:{metric}")
    size = _window_seconds(window)
    matched: dict[int, list[tuple[Any, dict[str, Any]]]] = {}
    seen: set[str] = set()
    for record in read.records:
        key = next((k for k in (record.inference_id, record.event_id) if k and k in labels), None)
        if key is None:
            continue
        seen.add(key)
        matched.setdefault(int(record.time.timestamp()) // size * size, []).append((record, labels[key]))
    windows: list[dict[str, Any]] = []
    violations: list[dict[str, Any]] = []
    for start in sorted(matched):
        pairs = matched[start]
        paths = write_images([r for r, _ in pairs], out / "images")
        manifest = out / "windows" / f"{start}.manifest"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text("".join(json.dumps({"source-ref": str(p), **fields}) + "\n"
                                    for p, (_, fields) in zip(paths, pairs, strict=True)), encoding="utf-8")
        report = contract.evaluate(predictor, manifest, progress=False)
        value = float(report.metrics[metric])
        begins = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        row = {"start": begins, "images": len(pairs), metric: value, "training": reference}
        windows.append(row)
        if reference is not None and value < reference - tolerance:
            violations.append({"feature_name": metric, "constraint_check_type": "LessThanThreshold",
                               "description": f"{metric} {value:.3f} on {len(pairs)} labelled requests from "
                                              f"{begins} is below the training figure {reference:.3f} − tolerance "
                                              f"{tolerance}"})
    result = {"metric": metric, "training": reference, "tolerance": tolerance, "window": window, "windows": windows,
              "labelled": len(labels), "matched": len(seen), "missing": sorted(set(labels) - seen),
              "bad_lines": bad + read.bad_lines, "violations": len(violations)}
    _write_json(out / "quality.json", result)
    _write_json(out / "constraint_violations.json", {"violations": violations})
    return result


def export_for_labeling(check_dir: str | Path, job: str, *, confidence_below: float = 0.6, limit: int = 500,
                        store: Any = None) -> dict[str, Any]:
    """Close the loop: create labeling job ``job`` from a check's window (``check_dir``, written by :func:`check`):
    every image when the window drifted, else those the model's confidence (the task contract's ``propose``) puts
    below ``confidence_below``; least confident first, at most ``limit``. The model's answers become editable
    pre-labels and the queue follows its uncertainty. Images keep their event id as file name, so the job's output
    manifest joins back as ground truth (:func:`quality`). Returns ``{"job", "images", "drifted"}``."""
    from oculi.labeling import jobs
    from oculi.labeling.auto import prelabel

    check_dir = Path(check_dir)
    report_path = check_dir / "drift.json"
    if not report_path.is_file():
        raise DataError(f"{report_path} not found; pass the --output folder of `oculi monitor run`.")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    info = read_baseline(report["baseline"])["baseline"]
    predictor, contract = _load(info["model"])
    images = [Path(e["image"]) for e in report.get("events", []) if Path(e["image"]).is_file()]
    drifted = report.get("violations", 0) > 0
    confidence = {p: proposal.confidence for p, proposal in zip(images, contract.propose(predictor, images, 0.5),
                                                                 strict=True)} if images else {}
    chosen = sorted((p for p in images if drifted or confidence[p] < confidence_below), key=confidence.get)[:limit]
    if not chosen:
        raise DataError(f"{check_dir}: no violation and no image below confidence {confidence_below}; nothing to "
                        "label (raise --confidence-below to send more).")
    folder = check_dir / "to-label" / job
    folder.mkdir(parents=True, exist_ok=True)
    for source in chosen:
        if not (folder / source.name).exists():
            (folder / source.name).write_bytes(source.read_bytes())
    jobs.create(job, contract.name, folder, info["classes"], store=store)
    prelabel(job, info["model"], store=store)
    return {"job": job, "images": len(chosen), "drifted": drifted}
