"""Transfer learning on real photos: ../shared/data/hymenoptera (ants vs bees), EfficientNet-Lite0 ImageNet
weights that install with oculi. Skipped when the shared data folder is absent."""

from __future__ import annotations

import json

from oculi.engine.training import train
from oculi.tasks import evaluate


def test_fine_tune_efficientnet_lite0_on_hymenoptera(shared_data, tmp_path):
    data = shared_data / "hymenoptera" / "hymenoptera_data"
    lines: list[str] = []
    result = train("image-classification", {"train": data / "train", "validation": data / "val"},
                   {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "1",
                    "freeze": "6"},
                   output=tmp_path / "model", progress=False, echo=lines.append)
    assert any("learning_rate=auto → 0.01 (sgd, fine-tuning)" in line for line in lines)
    assert any("ants 124, bees 121" in line for line in lines)  # the GIF placeholder is read, not dropped
    # One epoch from ImageNet features is far above chance (0.54); from scratch it would be near chance.
    assert result.metrics["validation:accuracy"] >= 0.85, result.metrics
    report = evaluate(result.model_dir, data, output=tmp_path / "report", progress=False)
    assert report.num_images == 153  # the split layout is evaluated on val/
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert abs(saved["accuracy"] - result.metrics["validation:accuracy"]) < 1e-6
