"""The model registry: numbered versions with the bundle's metrics and fingerprint, approval transitions (illegal
ones refused), concurrent registrations, `group:NAME` serving the latest approved version, and the deployment
history answering "what was serving at time T"."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import oculi
from oculi.artifacts import update_meta
from oculi.cli import app
from oculi.model_registry import (
    APPROVED,
    PENDING,
    REJECTED,
    ModelRegistryError,
    describe,
    history,
    latest_approved,
    register,
    serving_at,
    set_approval,
    versions,
)
from oculi.serving.config import config_from_models
from oculi.serving.server import BackgroundServer, ServeOptions, build_app
from tests.serving.conftest import encoded

runner = CliRunner()


def _copy(bundle: Path, to: Path, metrics: dict[str, float], fingerprint: str) -> Path:
    shutil.copytree(bundle, to)
    update_meta(to, {"metrics": metrics, "dataset": {"fingerprint": fingerprint}})
    return to


def test_versions_carry_the_bundle_metadata_and_approval_follows_the_rules(bundles, tmp_path):
    a = _copy(bundles["classification"], tmp_path / "a", {"validation:accuracy": 0.81}, "f" * 64)
    b = _copy(bundles["classification-b"], tmp_path / "b", {"validation:accuracy": 0.84}, "e" * 64)
    first = register(a, "ants", "first try")
    second = oculi.ModelPackage.register(b, "ants", "second")
    assert first["ModelPackageVersion"] == 1 and second.version == 2
    assert first["ModelApprovalStatus"] == PENDING == second.approval_status
    assert first["ModelMetrics"] == {"validation:accuracy": 0.81}
    assert first["DatasetFingerprint"] == "f" * 64 and first["ModelDataUrl"] == str(a.resolve())
    assert second.model_package_arn.endswith("model-package/ants/2")
    assert [v["ModelPackageVersion"] for v in versions("ants")] == [2, 1]

    with pytest.raises(ModelRegistryError, match="no Approved version"):
        latest_approved("ants")
    set_approval("ants", 1, APPROVED, "good enough")
    second.approve()
    assert latest_approved("ants")["ModelPackageVersion"] == 2
    # Approved → Approved and anything → Pending are refused, and nothing changes
    with pytest.raises(ModelRegistryError, match="cannot become Approved"):
        second.approve()
    with pytest.raises(ModelRegistryError, match="never returns to PendingManualApproval"):
        set_approval("ants", 1, PENDING)
    second.reject("worse on night images")
    assert describe("ants", 2)["ApprovalDescription"] == "worse on night images"
    assert latest_approved("ants")["ModelPackageVersion"] == 1  # falls back to the older approved version
    assert set_approval("ants", 2, APPROVED)["ModelApprovalStatus"] == APPROVED  # Rejected → Approved is allowed
    with pytest.raises(ModelRegistryError, match="no version 7"):
        describe("ants", 7)


def test_concurrent_registrations_get_distinct_versions(bundles):
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: register(bundles["classification"], "race")["ModelPackageVersion"], range(12)))
    assert sorted(got) == list(range(1, 13))


def test_cli_register_approve_and_refused_transition(bundles):
    result = runner.invoke(app, ["models", "register", str(bundles["detection"]), "--group", "bees"])
    assert result.exit_code == 0, result.output
    assert "version 1 of bees" in result.output
    assert runner.invoke(app, ["models", "reject", "bees", "--version", "1"]).exit_code == 0
    result = runner.invoke(app, ["models", "reject", "bees", "--version", "1"])
    assert isinstance(result.exception, ModelRegistryError) and "is Rejected" in str(result.exception)
    result = runner.invoke(app, ["models", "describe", "bees"])
    assert json.loads(result.output)["ModelApprovalStatus"] == REJECTED
    assert "bees" in runner.invoke(app, ["models", "list"]).output
    bad = runner.invoke(app, ["models", "register", str(bundles["detection"]), "--group", "no_underscores"])
    assert isinstance(bad.exception, ModelRegistryError) and "--group" in str(bad.exception)


def test_serve_group_resolves_the_latest_approved_version_and_history_answers_what_was_serving(bundles):
    register(bundles["classification"], "shop")
    register(bundles["classification-b"], "shop")
    set_approval("shop", 1, APPROVED)
    before = time.time()
    config = config_from_models([Path("group:shop")])
    assert config.endpoints[0].name == "shop"
    server = BackgroundServer(build_app(config, ServeOptions(), echo=lambda _l: None)).start()
    try:
        response = httpx.post(f"{server.url}/endpoints/shop/invocations", content=encoded(40, 40),
                              headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200, response.text
        described = httpx.get(f"{server.url}/api/endpoints/shop").json()["ProductionVariants"][0]
        assert described["ModelPackageArn"].endswith("shop/1")
        assert described["ModelDataUrl"] == str(bundles["classification"].resolve())
        time.sleep(0.01)
        middle = time.time()
        time.sleep(0.01)
        httpx.post(f"{server.url}/api/endpoints/shop/weights", json={"DesiredWeightsAndCapacities": [
            {"VariantName": "AllTraffic", "DesiredWeight": 2}]}).raise_for_status()
    finally:
        server.stop()
    events = history("shop")
    assert [e["Event"] for e in events] == ["Deployed", "WeightsChanged", "Stopped"]
    assert serving_at("shop", before - 1) == []
    assert serving_at("shop", middle)[0]["ModelPackageArn"].endswith("shop/1")
    assert serving_at("shop", middle)[0]["Weight"] == 1
    assert serving_at("shop", time.time() + 1) == []  # stopped since

    # version 2 approved: group:shop now means version 2
    set_approval("shop", 2, APPROVED)
    assert config_from_models([Path("group:shop")]).endpoints[0].variants[0].model == \
        bundles["classification-b"].resolve()
    # one version by number: ModelPackage.deploy serves exactly it, and the history names it
    with oculi.ModelPackage("shop", 1).deploy() as predictor:
        assert len(predictor.predict(encoded(40, 40))["prediction"]) == 3
    assert history("shop")[-2]["ProductionVariants"][0]["ModelPackageArn"].endswith("shop/1")
    set_approval("shop", 1, REJECTED)
    with pytest.raises(ModelRegistryError, match="Rejected and is not served"):
        config_from_models([Path("group:shop/1")])
    shown = runner.invoke(app, ["models", "history", "shop", "--at", datetime.fromtimestamp(middle, UTC).isoformat()])
    assert "shop/1" in shown.output and "weight 1" in shown.output
