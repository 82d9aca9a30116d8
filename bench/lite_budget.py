"""EfficientNet-Lite0 against Lite2 for transfer learning on hymenoptera (ants vs bees: 244 train, 153 val
photos) under the same time budget: ``image-classification`` with ``use_pretrained_model=1`` and only
``max_runtime`` set (epochs and the warm-up + cosine schedule planned from measured step times; Lite2 at its own
260 px input). Prints the epochs the budget allowed, the kept epoch's validation accuracy and the wall time (data
check, training and bundle included).

Usage: .venv/bin/python bench/lite_budget.py [--budget 120] [--data PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transfer_hymenoptera import DATA

from oculi.engine.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=120.0, help="max_runtime in seconds")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    print(f"hymenoptera, max_runtime {args.budget:g} s, torch threads {torch.get_num_threads()}")
    print(f"{'architecture':<20}{'epochs':>7}{'accuracy':>10}{'wall s':>8}")
    for lite in ("efficientnet-lite0", "efficientnet-lite2"):
        start = time.perf_counter()
        result = train("image-classification", {"train": args.data / "train", "validation": args.data / "val"},
                       {"architecture": lite, "use_pretrained_model": "1", "max_runtime": f"{args.budget:g}"},
                       output=Path(tempfile.mkdtemp(prefix="oculi-lite-")), progress=False, echo=lambda *_: None)
        seconds = time.perf_counter() - start
        print(f"{lite:<20}{result.budget['epochs']:>7}{result.metrics['validation:accuracy']:>10.3f}"
              f"{seconds:>8.0f}" + ("  (limit hit)" if result.budget["exceeded"] else ""), flush=True)


if __name__ == "__main__":
    main()
