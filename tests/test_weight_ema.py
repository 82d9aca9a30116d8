"""``ema=on`` (the engine's :class:`~oculi.engine.callbacks.WeightEMA`): validation and the bundle use the moving
average of the weights, recomputed here from the weights seen after every step; ``ema=off`` keeps the last ones."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from oculi.algorithms import get_algorithm
from oculi.artifacts import read_weights
from oculi.data.synthetic import write_classification_data
from oculi.engine.training import train


class StepWeights(L.Callback):
    """The network's floating-point weights when training starts and after every optimiser step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def _weights(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in pl_module.model.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, trainer, pl_module):  # noqa: ANN001, ANN201
        self.initial = self._weights(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # noqa: ANN001, ANN201
        self.steps.append(self._weights(pl_module))


@pytest.mark.parametrize("ema", ["on", "off"])
def test_the_bundle_keeps_the_moving_average_of_the_weights(ema, tmp_path):
    channels = write_classification_data(tmp_path / "data", per_class=8)
    seen = StepWeights()
    hp = {**get_algorithm("image-classification").tiny_hyperparameters, "epochs": "1", "ema": ema,
          "precision_dtype": "float32"}
    result = train("image-classification", channels, hp, output=tmp_path / "m", progress=False,
                   echo=lambda _: None, callbacks=[seen])
    assert result.hyperparameters["ema"] == ema and len(seen.steps) >= 3
    saved = read_weights(result.model_dir)
    last = seen.steps[-1]
    if ema == "off":
        assert all(torch.equal(saved[k], last[k]) for k in last)
        return
    # the average, recomputed: after step n it moves towards the weights by 1 - min(0.998, (1 + n) / (10 + n))
    expected = dict(seen.initial)
    for n, weights in enumerate(seen.steps, start=1):
        rate = 1 - min(0.998, (1 + n) / (10 + n))
        expected = {k: v + rate * (weights[k] - v) for k, v in expected.items()}
    assert all(torch.allclose(saved[k], expected[k], atol=1e-6) for k in expected)
    assert any(not torch.allclose(saved[k], last[k], atol=1e-4) for k in last)  # not simply the last weights
