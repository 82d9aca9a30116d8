"""Model monitoring on real photos: detection power and cost of ``oculi monitor``.

Trains an EfficientNet-Lite0 ants/bees classifier on hymenoptera (its shipped ImageNet weights, ``max_runtime``
seconds), baselines it on its training images, then sends windows of captured requests through the real capture
writer and checks each: (a) hymenoptera val photos as they are, (b) the same darkened to 40 %, (c) blurred,
(d) coco128 photos (another domain). Prints per window the Holm-adjusted p-values of brightness, sharpness,
predicted class and embeddings, and whether the window was flagged. Then the time and peak memory of a baseline
and a check of ``--scale`` captured images (val photos repeated).

Usage: .venv/bin/python bench/monitoring_drift.py [--max-runtime 120] [--windows 50,150] [--scale 1000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from oculi.engine.training import train
from oculi.monitoring import baseline, check
from oculi.serving.capture import DataCapture

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHOWN = ("brightness", "sharpness", "predicted_class", "confidence", "embedding")


def jpeg(img: Image.Image) -> bytes:
    """``img`` as JPEG bytes (quality 90)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def capture(folder: Path, images: list[Image.Image] | list[bytes]) -> Path:
    """Send ``images`` (pictures or JPEG bytes) as JPEG requests through the capture writer (every request
    captured)."""
    for first in range(0, len(images), 200):  # the writer drops what would queue beyond 64 MiB: 200 at a time
        writer = DataCapture(folder, percent=100, seed=0)
        writer.start()
        for n in range(first, min(first + 200, len(images))):
            body = images[n] if isinstance(images[n], bytes) else jpeg(images[n])
            writer.record("ants-bees", "AllTraffic", "image/jpeg", body, "application/json", b"{}",
                          inference_id=f"r{n}")
        writer.stop()
    return folder


CHECK = """import json, resource, sys, time
from oculi.monitoring import check
start = time.perf_counter()
report = check(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"images": report["images"], "seconds": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def peak_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    """Train, baseline, check the windows, measure the cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--max-runtime", type=int, default=120)
    parser.add_argument("--windows", default="50,150", help="window sizes (captured images; '' skips them)")
    parser.add_argument("--scale", type=int, default=1000, help="captured images for the timing run (0: skip)")
    args = parser.parse_args()
    hym = args.data / "hymenoptera" / "hymenoptera_data"
    if not hym.is_dir():
        print(f"{hym} not found; pass --data PATH (the folder holding hymenoptera/ and coco128/)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="oculi-monitor-"))
    print(f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    result = train("image-classification", {"train": hym / "train", "validation": hym / "val"},
                   {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "20",
                    "max_runtime": str(args.max_runtime)}, output=work / "model", progress=False, echo=lambda *_: None)
    print(f"classifier: validation accuracy {result.metrics['validation:accuracy']:.3f}")
    start = time.perf_counter()
    info = baseline(work / "model", hym, work / "baseline")
    print(f"baseline of {info['images']} training images: {time.perf_counter() - start:.1f} s, peak RSS "
          f"{peak_mib():.0f} MiB\n")
    val = sorted(hym.glob("val/*/*.jpg"))
    coco = sorted((args.data / "coco128" / "images").rglob("*.jpg"))
    rng = random.Random(0)
    kinds = {
        "val as is": lambda p: Image.open(p),
        "val darkened to 40 %": lambda p: Image.eval(Image.open(p).convert("RGB"), lambda v: int(v * 0.4)),
        "val blurred (radius 3)": lambda p: Image.open(p).convert("RGB").filter(ImageFilter.GaussianBlur(3)),
    }
    print(f"{'window':<26}{'n':>5}  " + "  ".join(f"{s:>15}" for s in SHOWN) + "  flagged")
    for size in (int(s) for s in args.windows.split(",") if s):
        rows = [(name, [make(p) for p in rng.sample(val, min(size, len(val)))]) for name, make in kinds.items()]
        rows.append(("coco128 photos", [Image.open(p) for p in rng.sample(coco, min(size, len(coco)))]))
        for name, images in rows:
            folder = work / f"{''.join(c if c.isalnum() else '-' for c in name)}-{size}"
            report = check(capture(folder / "capture", images), work / "baseline", folder / "check")
            p = {t["feature"]: t["p_adjusted"] for t in report["tests"]}
            flagged = sorted(t["feature"] for t in report["tests"] if t["flagged"])
            print(f"{name:<26}{len(images):>5}  " + "  ".join(f"{p.get(s, float('nan')):>15.2g}" for s in SHOWN)
                  + f"  {', '.join(flagged) or 'none'}", flush=True)
    if args.scale:
        bodies = [jpeg(Image.open(path)) for path in val]  # each photo encoded once, sent over and over
        folder = capture(work / "scale" / "capture", [bodies[n % len(bodies)] for n in range(args.scale)])
        # the check alone, in a process of its own: its time and peak memory, not this script's
        done = subprocess.run([sys.executable, "-c", CHECK, str(folder), str(work / "baseline"),
                               str(work / "scale" / "check")], capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\ncheck of {measured['images']} captured images: {measured['seconds']:.1f} s "
              f"({measured['images'] / measured['seconds']:.1f} images/s), peak RSS of the check's process "
              f"{measured['peak_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
