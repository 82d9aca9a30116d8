"""Ultralytics YOLO from scratch on a YOLO-layout train/validation pair under a wall-clock budget: the baseline
``bench/detection_quality.py`` compares oculi's SSD with (bees and coco128 person).

Runs in its own virtualenv (Ultralytics is not an oculi dependency), with torch held at oculi's pins::

    python3.11 -m venv /tmp/yolo-venv
    printf 'torch==2.14.1\\ntorchvision==0.29.1\\n' > /tmp/pins.txt
    /tmp/yolo-venv/bin/pip install -c /tmp/pins.txt ultralytics
    .venv/bin/python bench/detection_quality.py --dataset bees --write-yolo /tmp/bees-yolo
    /tmp/yolo-venv/bin/python bench/yolo_baseline.py /tmp/bees-yolo/train /tmp/bees-yolo/validation --minutes 15

``yolo11n.yaml`` builds the network from its definition: no weights can be downloaded here. Prints mAP@0.5 and
mAP@0.5:0.95 on the validation folder and the per-epoch curve from Ultralytics' results.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    """Write the data YAML, train under the budget, validate, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="YOLO folder (images/, labels/, data.yaml) from oculi data convert")
    parser.add_argument("validation", type=Path)
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--model", default="yolo11n.yaml")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import yaml
    from ultralytics import YOLO

    names = yaml.safe_load((args.train / "data.yaml").read_text())["names"]
    work = Path(tempfile.mkdtemp(prefix="yolo-baseline-"))
    data = work / "data.yaml"
    data.write_text(yaml.safe_dump({"train": str(args.train.resolve() / "images"),
                                    "val": str(args.validation.resolve() / "images"), "names": names}))
    model = YOLO(args.model)
    start = time.perf_counter()
    model.train(data=str(data), epochs=1000, time=args.minutes / 60, imgsz=args.imgsz, batch=args.batch,
                device="cpu", workers=2, project=str(work), name="run", plots=False, amp=False, seed=0,
                verbose=False)
    wall = time.perf_counter() - start
    metrics = model.val(data=str(data), imgsz=args.imgsz, batch=args.batch, device="cpu", plots=False,
                        project=str(work), name="val")
    print("\nepoch  elapsed_s  mAP50(B)")
    results = work / "run" / "results.csv"
    if results.is_file():
        for row in csv.DictReader(results.open()):
            row = {k.strip(): v for k, v in row.items()}
            print(f"{row['epoch']:>5}  {float(row.get('time', 'nan')):>9.0f}  {float(row['metrics/mAP50(B)']):.4f}")
    print(f"\n{args.model} from scratch, imgsz {args.imgsz}, {args.minutes:g} min budget: "
          f"validation mAP@0.5 {metrics.box.map50:.4f}, mAP@0.5:0.95 {metrics.box.map:.4f}; wall {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
