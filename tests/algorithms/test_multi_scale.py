"""``multi_scale`` for object detection: seeded per-step sides around ``image_shape`` (multiples of 32), boxes
scaled with the images, validation at ``image_shape``, and a clear refusal where the network cannot take it."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from oculi.algorithms.detection import rescaled, step_size
from oculi.data.synthetic import write_detection_data
from oculi.engine.training import train
from oculi.errors import ConfigError

TINY = {"image_shape": "128", "mini_batch_size": "4", "num_workers": "0", "epochs": "2", "network": "fcos"}


class Sides(L.Callback):
    """The side of every batch the detector's base network sees, split by training and validation."""

    def __init__(self) -> None:
        self.seen: dict[bool, list[int]] = {True: [], False: []}

    def on_fit_start(self, trainer, pl_module):  # noqa: ANN001, ANN201
        def record(module, args):  # noqa: ANN001, ANN202
            self.seen[module.training].append(args[0].shape[-1])

        pl_module.model.backbone.register_forward_pre_hook(record)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_detection_data(tmp_path_factory.mktemp("shapes"), count=8)


def test_step_sides_are_seeded_multiples_of_32_within_the_range():
    sides = [step_size(256, 0.25, 0, step) for step in range(200)]
    assert set(sides) <= {192, 224, 256, 288, 320} and len(set(sides)) == 5
    assert sides == [step_size(256, 0.25, 0, step) for step in range(200)]  # a resumed run draws the same
    assert sides != [step_size(256, 0.25, 1, step) for step in range(200)]  # another seed, other sides
    assert {step_size(256, 0.0, 0, step) for step in range(20)} == {256}
    assert step_size(80, 0.1, 0, 0) == 80  # no multiple of 32 in [72, 88]: the side itself


def test_rescaled_scales_the_boxes_with_the_pixels():
    images = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    images[0, :, 16:32, 8:40] = 255  # a white box x 8..40, y 16..32
    target = {"boxes": torch.tensor([[8.0, 16.0, 40.0, 32.0]]), "labels": torch.tensor([0])}
    out, (scaled,) = rescaled(images, [target], 128)
    assert out.shape == (1, 3, 128, 128)
    assert torch.equal(scaled["boxes"], torch.tensor([[16.0, 32.0, 80.0, 64.0]]))
    rows, cols = torch.nonzero(out[0, 0] > 127, as_tuple=True)
    assert (cols.min().item(), cols.max().item() + 1, rows.min().item(), rows.max().item() + 1) == (16, 80, 32, 64)
    same, targets = rescaled(images, [target], 64)
    assert same is images and targets[0] is target


def test_training_steps_see_the_drawn_sides_and_validation_stays_at_image_shape(data, tmp_path):
    sides = Sides()
    result = train("object-detection", data, {**TINY, "multi_scale": "0.5", "seed": "3"}, output=tmp_path / "m",
                   progress=False, echo=lambda _: None, callbacks=[sides])
    training, validation = sides.seen[True], sides.seen[False]
    assert len(training) == 4  # 8 images, batches of 4, 2 epochs
    assert training == [step_size(128, 0.5, 3, step) for step in range(len(training))]
    assert len(set(training)) > 1 and set(validation) == {128}
    assert result.hyperparameters["multi_scale"] == 0.5 and result.hyperparameters["image_shape"] == 128


def test_multi_scale_is_refused_where_the_network_has_one_input_size(data, tmp_path):
    with pytest.raises(ConfigError, match="network=ssd lays out its default boxes for one input size"):
        train("object-detection", data, {**TINY, "network": "ssd", "multi_scale": "0.25"}, output=tmp_path / "a",
              progress=False, echo=lambda _: None)
    with pytest.raises(ConfigError, match="needs network=fcos"):
        train("object-detection", data, {**TINY, "network": "auto", "base_network": "vgg-16", "multi_scale": "0.25"},
              output=tmp_path / "b", progress=False, echo=lambda _: None)
    with pytest.raises(ConfigError, match="multi_scale"):
        train("object-detection", data, {**TINY, "multi_scale": "1.5"}, output=tmp_path / "c", progress=False,
              echo=lambda _: None)
