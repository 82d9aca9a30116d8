"""Audit time and peak memory on a large generated collection (no label step: statistics, duplicates, report):
``--count`` images of 160×120 generated scenes written as JPEGs, a tenth of them re-encoded copies; the audit
is run twice to show the per-fingerprint cache.

Usage: .venv/bin/python bench/analysis_audit_scale.py [--count 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oculi.analysis.audit import audit


def write_images(root: Path, count: int) -> None:
    """``root/train/{a,b}/N.jpg``: random blocky scenes; every tenth image re-encodes the one before it."""
    rng = np.random.default_rng(0)
    last = root
    for n in range(count):
        folder = root / "train" / ("a" if n % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        if n % 10 == 9:
            Image.open(last).resize((150, 112)).save(folder / f"{n}.jpg", quality=50)
            continue
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((160, 120), Image.Resampling.BICUBIC)
        last = folder / f"{n}.jpg"
        img.save(last, quality=90)


def main() -> int:
    """Generate, audit twice, print times and peak resident memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oculi-audit-scale-"))
    os.environ.setdefault("OCULI_HOME", str(work / "home"))
    start = time.perf_counter()
    write_images(work / "data", args.count)
    print(f"wrote {args.count} images in {time.perf_counter() - start:.0f} s", flush=True)
    for run in ("first", "second (cached)"):
        start = time.perf_counter()
        report = audit([work / "data" / "train"], work / "out", labels=False, progress=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{run} audit: {time.perf_counter() - start:.1f} s, {len(report.findings)} findings "
              f"({report.to_dict()['counts']}), peak RSS {peak:.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
