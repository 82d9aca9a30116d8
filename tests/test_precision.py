"""The precision policy lives below the algorithms (``oculi.precision``) and one rule decides channels_last for
training (every algorithm's module) and inference (the torch runtime)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oculi.algorithms.classification import ClassificationModule, ImageClassificationHyperparameters
from oculi.algorithms.segmentation import SegmentationModule, SemanticSegmentationHyperparameters
from oculi.inference.runtimes import TorchRuntime
from oculi.precision import memory_format, uses_channels_last

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class Recorder(nn.Module):
    """A 3×3 convolution that records whether each input it sees is channels_last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return self.conv(x)


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_every_module_and_the_runtime_follow_one_rule(precision: str) -> None:
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    classify = Recorder()
    ClassificationModule(classify, ImageClassificationHyperparameters(precision_dtype=precision), 2, MEAN, STD,
                         None, frozen_norms=[])(images)
    segment = Recorder()
    SegmentationModule(segment, SemanticSegmentationHyperparameters(precision_dtype=precision), 2, MEAN, STD)(images)
    expected = uses_channels_last(precision, "cpu")
    assert expected  # on a CPU every precision runs channels_last (float32 too: oneDNN's NHWC kernels are faster)
    assert uses_channels_last(precision, "cuda") == (precision != "float32")  # on a GPU, mixed precision only
    assert classify.seen == [expected]
    assert segment.seen == [expected]  # segmentation used its own rule before (bfloat16 on CPU only)
    if precision != "float16":  # the torch runtime takes float32 or bfloat16
        infer = Recorder()
        TorchRuntime(infer, torch.device("cpu"), precision)(images.float())
        assert infer.seen == [expected]
        assert infer.conv.weight.is_contiguous() != expected


def test_memory_format_converts_modules_and_leaves_other_ranks_alone() -> None:
    conv = memory_format(nn.Conv2d(3, 4, 3), "bfloat16")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert memory_format(conv, "float32", "cuda").weight.is_contiguous()
    assert not memory_format(conv, "float32", "cpu").weight.is_contiguous()
    vector = torch.ones(5)
    assert memory_format(vector, "bfloat16") is vector

