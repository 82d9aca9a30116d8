"""The console's data-audit page: ``/audits/{name}`` shows a recorded audit (``oculi data audit``) — counts per kind,
the findings of each kind with thumbnails, the paths of its HTML report and ``clean.manifest`` — and a form that
sends its suspects to a labeling job (:func:`oculi.labeling.audits.send_to_labeling`, what ``oculi label
add-from-audit`` calls), then opens the job's page. The dataset page lists a dataset's audits.

Images are served by id only: ``/audits/{name}/finding/{n}`` (``/related``) is a thumbnail of the file finding
``n`` of the audit's ``audit.json`` names (written to the audit's own ``thumbs/``, as the HTML report's are);
``/audits/{name}/report/…`` serves ``report.html``, ``report.css`` and ``thumbs/<hash>.jpg`` of the audit folder
and nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from oculi.errors import DataError, JobError, OculiError

SHOWN = 24  # findings shown per kind (the report and audit.json have them all)
THUMB = re.compile(r"thumbs/[0-9a-f]{20}\.jpg")


def _missing(message: str) -> Response:
    """A 404 for an image or file that is not listed (the JSON error shape, not a page)."""
    from oculi.serving.http import error_response

    return error_response(404, "NotFound", message)


def _when(seconds: float | None) -> str:
    from oculi.jobs.store import iso

    return (iso(seconds) or "")[:19].replace("T", " ")


def audit_rows(store: Any, location: str) -> list[dict[str, Any]]:
    """The dataset page's rows of the audits of the dataset at ``location``: name, time, findings, the three
    largest counts."""
    from oculi.labeling.audits import list_audits

    return [{"name": r["name"], "when": _when(r["info"].get("audited_at")), "findings": r["info"].get("findings", 0),
             "top": sorted(r["info"].get("counts", {}).items(), key=lambda kv: -kv[1])[:3],
             "sent": r["info"].get("sent", [])} for r in list_audits(store, location)]


def _record(store: Any, name: str) -> dict[str, Any]:
    """The catalog record of audit ``name``, or a JobError saying where audits come from."""
    from oculi.labeling.audits import AUDIT

    try:
        return store.lookup(AUDIT, name)
    except JobError:
        raise JobError(f"No audit named {name!r}: `oculi data audit DATA --output DIR` records one, and a dataset's "
                       "page lists its audits.") from None


def router() -> APIRouter:
    """The audit page, its send form and its image / report routes."""
    from oculi.console.pages import render, store_of
    from oculi.labeling.audits import SEND_KINDS, default_job_name, list_audits, read_audit, suspects

    r = APIRouter(include_in_schema=False)

    def page(request: Request, name: str, error: str | None = None, values: dict[str, str] | None = None,
             status_code: int = 200) -> HTMLResponse:
        store = store_of(request)
        record = _record(store, name)
        folder = Path(record["location"])
        audit = read_audit(folder)
        findings = audit.get("findings", [])
        groups: dict[str, list[dict[str, Any]]] = {}
        for n, finding in enumerate(findings):
            groups.setdefault(finding["kind"], []).append({**finding, "n": n, "name": Path(finding["file"]).name,
                                                           "related_name": Path(finding["related"]).name
                                                           if finding.get("related") else None})
        datasets = [d for d in store.registered("dataset")
                    if any(row["name"] == name for row in list_audits(store, d["location"]))]
        return render(request, "audit.html", status_code, name=name, record=record, audit=audit, groups=groups,
                      shown=SHOWN, send_kinds=SEND_KINDS, suspects=len(suspects(audit)), folder=folder,
                      report=(folder / "report.html").is_file(), clean=folder / "clean.manifest",
                      datasets=datasets, when=_when(record["info"].get("audited_at")),
                      sent=[{**s, "when": _when(s.get("time"))} for s in record["info"].get("sent", [])],
                      error=error, values=values or {"job": default_job_name(audit)})

    @r.get("/audits/{name}")
    def audit_page(request: Request, name: str) -> HTMLResponse:
        return page(request, name)

    @r.post("/audits/{name}/send")
    async def send(request: Request, name: str) -> Response:
        from oculi.labeling.audits import send_to_labeling

        store = store_of(request)
        record = _record(store, name)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        job = form.get("job", "")
        try:
            result = await run_in_threadpool(send_to_labeling, job, Path(record["location"]), store=store)
            if not result["suspects"]:
                raise DataError("this audit has no suspects of the kinds sent to labeling; nothing to send.")
        except OculiError as e:
            return page(request, name, str(e), form, 400)
        return RedirectResponse(f"/labeling/{job}", status_code=303)

    def _finding(request: Request, name: str, n: str) -> tuple[Path, dict[str, Any]] | None:
        """The audit folder and finding number ``n`` of audit ``name`` (None: no such audit or finding)."""
        try:
            folder = Path(_record(store_of(request), name)["location"])
            findings = read_audit(folder).get("findings", [])
        except (JobError, DataError):
            return None
        return (folder, findings[int(n)]) if n.isascii() and n.isdigit() and int(n) < len(findings) else None

    def _thumbnail(folder: Path, file: str | None) -> Response:
        from oculi.analysis.report import thumbnail

        relative = thumbnail(Path(file), folder) if file and Path(file).is_file() else None
        if relative is None:
            return _missing(f"the image {Path(file or '').name!r} no longer exists or does not decode.")
        return FileResponse(folder / relative, media_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=300"})

    @r.get("/audits/{name}/finding/{n}")
    def finding_image(request: Request, name: str, n: str) -> Response:
        found = _finding(request, name, n)
        if found is None:
            return _missing(f"no finding {n} in audit {name!r}.")
        return _thumbnail(found[0], found[1]["file"])

    @r.get("/audits/{name}/finding/{n}/related")
    def related_image(request: Request, name: str, n: str) -> Response:
        found = _finding(request, name, n)
        if found is None or not found[1].get("related"):
            return _missing(f"no finding {n} with a related image in audit {name!r}.")
        return _thumbnail(found[0], found[1]["related"])

    @r.get("/audits/{name}/report/{file:path}")
    def report_file(request: Request, name: str, file: str) -> Response:
        try:
            folder = Path(_record(store_of(request), name)["location"])
        except JobError as e:
            return _missing(str(e))
        chosen = file or "report.html"
        if chosen not in ("report.html", "report.css") and not THUMB.fullmatch(chosen):
            return _missing(f"no report file {file!r} in audit {name!r}.")
        path = folder / chosen
        if not path.is_file():
            return _missing(f"audit {name!r} has no {chosen} (run the audit again to write it).")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=60"})

    return r
