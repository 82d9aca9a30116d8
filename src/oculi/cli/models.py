"""``oculi models``: the model registry — register bundles as versions of a model package group, list, describe,
approve or reject them, and see an endpoint's deployment history."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from oculi.cli.common import console

app = typer.Typer(help="The model registry (SageMaker's model package groups and versions). Example: oculi models "
                  "register runs/ants/model --group ants && oculi models approve ants --version 1 && oculi serve "
                  "group:ants", no_args_is_help=True)


@app.command("register")
def register(
    bundle: Path = typer.Argument(..., help="Model bundle folder (or a job's output folder)."),
    group: str = typer.Option(..., "--group", help="Model package group; created on its first version."),
    description: str = typer.Option("", "--description", help="ModelPackageDescription."),
) -> None:
    """Register a bundle as the next version of a group, pending manual approval; its metrics, training job and
    dataset fingerprint are read from the bundle's model.json.

    Example: oculi models register runs/ants/model --group ants --description "resnet18, 30 epochs"
    """
    from oculi.model_registry import register as run

    item = run(bundle, group, description)
    console.print(f"registered {item['ModelPackageArn']}: version {item['ModelPackageVersion']} of {group}, "
                  f"{item['ModelApprovalStatus']}. Approve it with: oculi models approve {group} --version "
                  f"{item['ModelPackageVersion']}")


@app.command("list")
def list_models(
    group: str | None = typer.Argument(None, help="A group: list its versions. Left out: list the groups."),
) -> None:
    """List model package groups, or the versions of one group (newest first).

    Example: oculi models list ants
    """
    from rich.table import Table

    from oculi.model_registry import groups, versions

    if group is None:
        found = groups()
        if not found:
            console.print("no model package groups yet; create one with oculi models register BUNDLE --group NAME")
            return
        table = Table("group", "versions", "latest approved", "created", box=None)
        for g in found:
            table.add_row(g["ModelPackageGroupName"], str(g["Versions"]), str(g["LatestApprovedVersion"] or "-"),
                          g["CreationTime"])
    else:
        table = Table("version", "approval", "metrics", "training job", "created", "description", box=None)
        for v in versions(group):
            metrics = ", ".join(f"{k}={val:.4g}" for k, val in v["ModelMetrics"].items()
                                if isinstance(val, int | float))
            table.add_row(str(v["ModelPackageVersion"]), v["ModelApprovalStatus"], metrics,
                          v["TrainingJobName"] or "-", v["CreationTime"], v["ModelPackageDescription"])
    console.print(table)


@app.command("describe")
def describe(
    group: str = typer.Argument(..., help="Model package group."),
    version: int | None = typer.Option(None, "--version", help="Version number (default: the newest)."),
) -> None:
    """Print one version as JSON, in the shape of SageMaker's DescribeModelPackage.

    Example: oculi models describe ants --version 2
    """
    from oculi.model_registry import describe as run

    console.print_json(json.dumps(run(group, version)))


def _set(group: str, version: int, status: str, reason: str) -> None:
    from oculi.model_registry import set_approval

    item = set_approval(group, version, status, reason)
    console.print(f"{item['ModelPackageArn']}: {item['ModelApprovalStatus']}")


@app.command("approve")
def approve(
    group: str = typer.Argument(..., help="Model package group."),
    version: int = typer.Option(..., "--version", help="Version number."),
    reason: str = typer.Option("", "--reason", help="ApprovalDescription."),
) -> None:
    """Approve a version: `oculi serve group:NAME` serves the newest approved one.

    Example: oculi models approve ants --version 2 --reason "mAP up 3 points"
    """
    from oculi.model_registry import APPROVED

    _set(group, version, APPROVED, reason)


@app.command("reject")
def reject(
    group: str = typer.Argument(..., help="Model package group."),
    version: int = typer.Option(..., "--version", help="Version number."),
    reason: str = typer.Option("", "--reason", help="ApprovalDescription."),
) -> None:
    """Reject a version (an approved one is withdrawn: group:NAME falls back to the previous approved one).

    Example: oculi models reject ants --version 3 --reason "worse on night images"
    """
    from oculi.model_registry import REJECTED

    _set(group, version, REJECTED, reason)


@app.command("history")
def history(
    endpoint: str | None = typer.Argument(None, help="Endpoint name (default: all)."),
    at: str | None = typer.Option(None, "--at", help="ISO time (UTC unless it says otherwise): print only what "
                                  "ENDPOINT was serving then."),
) -> None:
    """Deployment history: every deployment, weight change and stop of the endpoints `oculi serve` ran.

    Example: oculi models history ants --at 2026-03-01T12:00
    """
    from oculi.errors import ConfigError
    from oculi.model_registry import history as events
    from oculi.model_registry import serving_at

    if at is not None:
        if endpoint is None:
            raise ConfigError("--at needs an ENDPOINT: oculi models history ants --at 2026-03-01T12:00")
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise ConfigError(f"--at {at!r} is not an ISO time; e.g. 2026-03-01T12:00 or 2026-03-01.") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        variants = serving_at(endpoint, when)
        if not variants:
            console.print(f"endpoint {endpoint} was not serving at {when.isoformat()}")
        for v in variants:
            console.print(f"{v['VariantName']}: {v['ModelDataUrl']} {v['ModelPackageArn'] or ''} weight "
                          f"{v['Weight']:g}")
        return
    for event in events(endpoint):
        shown = "; ".join(f"{v['VariantName']}={v['ModelPackageArn'] or v['ModelDataUrl']} (w {v['Weight']:g})"
                          for v in event["ProductionVariants"])
        console.print(f"{event['Time']}  {event['EndpointName']}  {event['Event']}  {shown}")
