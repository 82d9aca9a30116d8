"""HTML pages of the analysis layer: the audit report (thumbnails per kind of finding) and the search contact
sheet. Both are static files beside a ``thumbs/`` folder of small JPEGs (the report also beside its
``report.css``), so they open from disk with no server and no external requests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment

from oculi.analysis.cache import atomic_write

if TYPE_CHECKING:
    from oculi.analysis.audit import AuditReport

THUMB_SIDE = 160
_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d8dde6;padding-bottom:.3rem}
.grid{display:flex;flex-wrap:wrap;gap:.8rem}.card{width:180px;background:#fff;border:1px solid #d8dde6;
border-radius:6px;padding:.5rem;font-size:12px;overflow-wrap:anywhere}.card img{max-width:160px;max-height:160px;
display:block;margin:0 auto .4rem}
.card img.related{max-width:80px;max-height:80px;margin:.3rem 0}
.score{font-weight:600}.fix{color:#4a5468}.muted{color:#6b7486}
table{border-collapse:collapse}td,th{padding:.2rem .7rem;border-bottom:1px solid #e3e7ee;text-align:left}
"""
_AUDIT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>oculi data audit</title>
<link rel="stylesheet" href="report.css"></head><body>
<h1>Data audit — {{ report.task }}</h1>
<p class="muted">{{ images }} images in {{ report.sets|length }} split(s) · {{ report.findings|length }} findings ·
label scores: {{ report.label_scores or "not computed" }} · {{ "%.1f"|format(report.seconds) }} s</p>
{% for note in report.notes %}<p class="muted">Note: {{ note }}</p>{% endfor %}
<table><tr><th>kind</th><th>findings</th></tr>
{% for kind, items in groups.items() %}<tr><td><a href="#{{ kind }}">{{ kind }}</a></td><td>{{ items|length }}</td>
</tr>{% endfor %}</table>
{% for kind, items in groups.items() %}<h2 id="{{ kind }}">{{ kind }} ({{ items|length }})</h2><div class="grid">
{% for f in items[:limit] %}<div class="card">{% if thumbs[f.file] %}<img src="{{ thumbs[f.file] }}" alt="">{% endif %}
<div>{{ f.file.split("/")[-1] }}{% if f.line %} · line {{ f.line }}{% endif %} · {{ f.split }}</div>
<div class="score">score {{ "%.3g"|format(f.score) }}</div><div>{{ f.detail }}</div>
{% if f.related %}<div class="muted">↔ {{ f.related.split("/")[-1] }}</div>{% if thumbs[f.related] %}
<img class="related" src="{{ thumbs[f.related] }}" alt="">{% endif %}{% endif %}
<div class="fix">{{ f.fix }}</div></div>{% endfor %}</div>
{% if items|length > limit %}<p class="muted">… {{ items|length - limit }} more in audit.json</p>{% endif %}
{% endfor %}</body></html>"""
_SHEET = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>oculi search</title>
<style>{{ style }}</style></head><body><h1>Nearest to {{ query }}</h1>
<div class="grid"><div class="card"><img src="{{ query_thumb }}" alt=""><div>query{% if box %} box {{ box }}{% endif %}
</div></div>{% for hit in hits %}<div class="card"><img src="{{ hit.thumb }}" alt="">
<div>{{ hit.rank }}. {{ hit.image.split("/")[-1] }}</div>
<div class="score">similarity {{ "%.3f"|format(hit.score) }}</div>
<div class="muted">{{ hit.split }} {{ hit.labels|join(", ") }}{% if hit.box %} box {{ hit.box }}{% endif %}</div></div>
{% endfor %}</div></body></html>"""


def thumbnail(image: Path, folder: Path, box: Sequence[float] | None = None) -> str | None:
    """Write a ≤ :data:`THUMB_SIDE` px JPEG of ``image`` (or of its ``box`` crop, ``xyxy`` pixels) under
    ``folder/thumbs/`` and return its path relative to ``folder``; None when the file does not decode."""
    from PIL import Image, ImageOps

    key = hashlib.sha1(f"{image}|{box}".encode()).hexdigest()[:20]
    relative = f"thumbs/{key}.jpg"
    target = folder / relative
    if target.exists():
        return relative
    try:
        with Image.open(image) as img:
            img.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))
            picture = ImageOps.exif_transpose(img).convert("RGB")
            if box is not None:
                sx, sy = picture.width / img.size[0], picture.height / img.size[1]
                picture = picture.crop((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
            picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
            target.parent.mkdir(parents=True, exist_ok=True)
            picture.save(target, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return relative


def write_audit_html(report: AuditReport, output: Path, limit: int = 60) -> Path:
    """``output/report.html``: a table of counts and, per kind, thumbnails of the ``limit`` best-scored findings
    with their file, line, score, measurement and fix. Its style is ``report.css`` beside it (not inline, so the
    console can serve the report under its Content-Security-Policy)."""
    groups = report.by_kind()
    shown = [f for items in groups.values() for f in items[:limit]]
    thumbs = {path: thumbnail(Path(path), output) for f in shown for path in (f.file, f.related) if path}
    html = Environment(autoescape=True).from_string(_AUDIT).render(
        report=report, groups=groups, thumbs=thumbs, limit=limit, images=sum(len(s) for s in report.sets.values()))
    atomic_write(output / "report.css", _STYLE.encode())
    path = output / "report.html"
    atomic_write(path, html.encode())
    return path


def write_contact_sheet(path: Path, query: Path, box: Sequence[float] | None, hits: list[dict[str, Any]]) -> Path:
    """A contact sheet at ``path``: the query (crop) and each hit (``rank``, ``image``, ``score``, ``split``,
    ``labels``, ``box``) as thumbnails, thumbnails under ``path``'s folder."""
    folder = Path(path).parent
    rows = [{**hit, "thumb": thumbnail(Path(hit["image"]), folder, hit.get("box"))} for hit in hits]
    html = Environment(autoescape=True).from_string(_SHEET).render(
        query=str(query), box=list(box) if box else None, query_thumb=thumbnail(Path(query), folder, box),
        hits=rows, style=_STYLE)
    atomic_write(Path(path), html.encode())
    return Path(path)
