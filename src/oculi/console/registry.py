"""The console's model registry pages: ``/registry`` lists the model package groups and the latest deployments,
``/registry/{group}`` a group's versions (approval, metrics, training job, dataset fingerprint) and the deployment
history of the endpoints that served them. Read-only: approvals go through ``oculi models approve|reject``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

# ModelApprovalStatus → the badge colour class console.css already has
BADGE = {"Approved": "Completed", "Rejected": "Failed", "PendingManualApproval": "InProgress"}


def _render(request: Request, template: str, **context: Any) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(request, template, {"badge": BADGE, **context})


def router() -> APIRouter:
    """The registry pages."""
    from oculi.model_registry import GROUP_PREFIX, groups, history, package_arn, versions

    r = APIRouter(include_in_schema=False)

    @r.get("/registry")
    def registry(request: Request) -> HTMLResponse:
        return _render(request, "registry.html", groups=groups(), events=list(reversed(history()))[:20])

    @r.get("/registry/{group}")
    def group_page(request: Request, group: str) -> HTMLResponse:
        found = versions(group)
        arns = {package_arn(group, v["ModelPackageVersion"]) for v in found}
        events = [e for e in reversed(history())
                  if any(v.get("ModelPackageArn") in arns for v in e["ProductionVariants"])]
        return _render(request, "registry_group.html", group=group, versions=found, events=events,
                       prefix=GROUP_PREFIX)

    return r
