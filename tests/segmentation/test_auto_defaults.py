"""Segmentation defaults that learn: optimizer / learning_rate / backbone_lr_factor ``auto`` resolved for
fine-tuning (adamw at 0.001) and printed, SageMaker's explicit values kept as they mean, an explicit backbone
factor honoured, and the
majority-class baseline behind the "no better than predicting X everywhere" warning."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from oculi.algorithms.segmentation import baseline_warning, confusion_scores, majority_baseline
from oculi.data.synthetic import write_segmentation_data
from oculi.engine.training import train
from tests.segmentation.helpers import TINY


class Rates(L.Callback):
    """The optimiser's class and its parameter groups' rates (and sizes) when training starts."""

    def on_train_start(self, trainer, pl_module):  # noqa: ANN001, ANN201
        opt = trainer.optimizers[0]
        self.kind = type(opt).__name__
        self.groups = [(group["initial_lr"] if "initial_lr" in group else group["lr"], len(group["params"]))
                       for group in opt.param_groups]


def test_majority_baseline_scores_predicting_the_most_frequent_class_everywhere():
    # rows truth, columns prediction: 70 pixels of class 0, 30 of class 1, a model that gets most right
    confusion = torch.tensor([[65, 5], [10, 20]])
    miou, accuracy, majority = majority_baseline(confusion)
    assert majority == 0 and accuracy == pytest.approx(0.7) and miou == pytest.approx(0.35)  # IoUs 0.7 and 0
    model_miou, model_accuracy, _ = confusion_scores(confusion)
    assert baseline_warning((miou, accuracy, majority), model_miou, model_accuracy, ["cell", "membrane"]) is None
    # the run: SageMaker's defaults on isbi2012-em ended below "cell everywhere"
    warning = baseline_warning((0.38, 0.77, 0), 0.30, 0.47, ["cell", "membrane"])
    assert warning is not None and "predicting `cell` everywhere" in warning
    assert "mIOU 0.3000 ≤ 0.3800" in warning and "pixel accuracy 0.4700 ≤ 0.7700" in warning


@pytest.mark.parametrize(("given", "kind", "factor"), [({}, "AdamW", 1.0),
                                                       ({"optimizer": "sgd", "learning_rate": "0.001",
                                                         "backbone_lr_factor": "0.1"}, "SGD", 0.1)],
                         ids=["auto", "explicit"])
def test_auto_fine_tunes_with_adamw_and_a_slower_backbone_and_explicit_values_mean_what_they_say(
        given, kind, factor, tmp_path):
    channels = write_segmentation_data(tmp_path / "data", count=4, size=(64, 48))
    hp = {k: v for k, v in TINY.items() if k != "learning_rate"} | given
    lines: list[str] = []
    rates = Rates()
    result = train("semantic-segmentation", channels, hp, output=tmp_path / "model", progress=False,
                   echo=lines.append, callbacks=[rates])
    text = "\n".join(lines)
    assert rates.kind == kind, text
    (backbone_rate, _), (head_rate, _) = rates.groups
    assert head_rate == pytest.approx(0.001) and backbone_rate == pytest.approx(0.001 * factor)
    if not given:
        assert "optimizer=auto → adamw (fine-tuning a pretrained backbone)" in text
        assert "learning_rate=auto → 0.001" in text and "backbone_lr_factor=auto → 1" in text
    saved = result.hyperparameters
    assert (saved["optimizer"], saved["learning_rate"], saved["backbone_lr_factor"]) == (
        kind.lower(), 0.001, factor)
