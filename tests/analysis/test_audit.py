"""``oculi data audit`` on data whose problems are known: precision and recall at the number injected, outputs,
and the user's files untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.analysis.audit import audit
from oculi.cli import app
from oculi.data.formats.manifest import read_manifest
from oculi.errors import ConfigError, DataError
from oculi.jobs.store import JobStore
from tests.analysis.conftest import hymenoptera_copy


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` → SHA-1 of its bytes and its mtime."""
    return {str(p): f"{hashlib.sha1(p.read_bytes()).hexdigest()}:{p.stat().st_mtime_ns}"
            for p in sorted(root.rglob("*")) if p.is_file()}


def precision_recall_at_injected(findings: list, truth: set[str]) -> tuple[float, float]:
    """Precision and recall of the ``len(truth)`` best-scored findings."""
    top = {f.file for f in sorted(findings, key=lambda f: -f.score)[:len(truth)]}
    hits = len(top & truth)
    return hits / max(len(top), 1), hits / len(truth)


def test_audit_finds_injected_quality_problems_and_leakage(tmp_path):
    data = hymenoptera_copy(tmp_path / "data")
    before = snapshot(data.root)
    report = audit([data.root], tmp_path / "out", labels=False, progress=False)
    groups = report.by_kind()
    for kind, truth in data.truth.items():
        precision, recall = precision_recall_at_injected(groups.get(kind, []), truth)
        assert (precision, recall) == (1.0, 1.0), (kind, [(f.file, f.score) for f in groups.get(kind, [])])
    # a leaked copy names the training photo it copies, and darkened photos are not also called blurry
    assert all(f.related and "/train/" in f.related for f in groups["leakage"])
    assert not {f.file for f in groups.get("blurry", [])} & data.truth["dark"]
    assert snapshot(data.root) == before  # the user's files are never touched
    written = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert written["counts"]["leakage"] == 5 and written["images"] == {"train": 80, "validation": 35}
    first = written["findings"][0]
    assert {"file", "line", "kind", "score", "fix", "split"} <= set(first)
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="leakage"' in html and html.count("thumbs/") >= 14
    clean = read_manifest(tmp_path / "out" / "clean.manifest")
    kept = {str(s.image) for s in clean.samples}
    train = {str(s.image) for s in report.sets["train"].samples}
    assert kept == train - {f for split, f in report.flagged() if split == "train"}
    assert not kept & (data.truth["dark"] | data.truth["blurry"])
    val = read_manifest(tmp_path / "out" / "clean-validation.manifest")
    assert not {str(s.image) for s in val.samples} & data.truth["leakage"]


def test_second_audit_reads_the_statistics_cache(tmp_path, monkeypatch):
    data = hymenoptera_copy(tmp_path / "data", per_class=10, val_per_class=4)
    first = audit([data.root], tmp_path / "one", labels=False, progress=False)
    calls = []
    import oculi.analysis.stats as stats

    monkeypatch.setattr(stats, "compute_stats", lambda path: calls.append(path))
    second = audit([data.root], tmp_path / "two", labels=False, progress=False)
    assert calls == [] and second.stats == first.stats


def test_label_issues_from_out_of_fold_jobs(label_audit):
    report = label_audit.report
    truth = label_audit.data.truth["label_issue"]
    precision, recall = precision_recall_at_injected(
        [f for f in report.findings if f.kind == "label_issue"], truth)
    assert precision >= 5 / 6 and recall >= 5 / 6
    assert report.label_scores == "out_of_fold" and len(report.jobs) == 2
    with pytest.MonkeyPatch.context() as patch:  # the folds are ordinary, completed training jobs
        patch.setenv("OCULI_HOME", str(label_audit.home))
        assert [JobStore().get(name)["status"] for name in report.jobs] == ["Completed", "Completed"]
    flipped = next(f for f in report.findings if f.kind == "label_issue" and f.file in truth)
    assert "the model says" in flipped.fix


def test_cli_audit_reports_bad_input_without_traceback(tmp_path):
    result = CliRunner().invoke(app, ["data", "audit", str(tmp_path / "missing"), "-o", str(tmp_path / "o")])
    assert isinstance(result.exception, DataError) and "missing: not found" in str(result.exception)
    both = CliRunner().invoke(app, ["data", "audit", "train=a", "b", "-o", str(tmp_path / "o")])
    assert isinstance(both.exception, ConfigError) and "not a mix" in str(both.exception)
    assert not (tmp_path / "o").exists()
