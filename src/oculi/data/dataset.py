"""A torch ``Dataset`` over samples: decode (Pillow, EXIF applied, RGB) → augment → ``uint8`` tensor + target.

Images stay ``uint8`` until they reach the model's device, where they are normalised: workers send 4× fewer
bytes and normalisation runs vectorised on the whole batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from oculi.data.image import decode_image
from oculi.types import Sample


class ClassificationDataset(Dataset):
    """Items are ``(image uint8 [3, H, W], target)``; target is an ``int64`` scalar class index, or a
    ``float32 [num_classes]`` multi-hot vector when ``multi_label``. ``min_side`` lets large JPEGs decode at a
    reduced scale (never below the resize target)."""

    def __init__(self, samples: Sequence[Sample], num_classes: int, transform: Callable, *,
                 multi_label: bool = False, min_side: int | None = None) -> None:
        self.samples = list(samples)
        self.num_classes = num_classes
        self.transform = transform
        self.multi_label = multi_label
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.samples)

    def target(self, index: int) -> torch.Tensor:
        """The target tensor of item ``index`` (without decoding the image)."""
        t = self.samples[index].target
        if self.multi_label:
            hot = torch.zeros(self.num_classes, dtype=torch.float32)
            hot[list(t if isinstance(t, tuple) else (t,))] = 1.0
            return hot
        return torch.tensor(t, dtype=torch.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = decode_image(self.samples[index].image, min_side=self.min_side)
        return self.transform(image), self.target(index)


class DetectionDataset(Dataset):
    """Items are ``(image uint8 [3, S, S], target)`` with ``target = {"boxes": float32 [N, 4] xyxy pixels of the
    transformed image, "labels": int64 [N] 0-based}``; ``transform`` is a detection preset of
    :mod:`oculi.data.transforms`. Images are decoded at reduced scale when much larger than ``min_side``.
    ``mosaic``: the probability that an item is instead a 2×2 mosaic (:func:`oculi.data.transforms.mosaic`) of it
    and three random others, each through ``transform`` (which must then give ``min_side``-square images), meeting
    at a random point."""

    def __init__(self, samples: Sequence[Sample], transform: Callable, *, min_side: int | None = None,
                 mosaic: float = 0.0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.min_side = min_side
        self.mosaic = mosaic

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.mosaic and self.min_side and float(torch.rand(())) < self.mosaic:
            from oculi.data.transforms import mosaic

            size = self.min_side
            others = torch.randint(len(self.samples), (3,)).tolist()
            tiles = [self._transformed(i) for i in (index, *others)]
            centre = (torch.rand(2) * 0.5 + 0.25) * size  # the four meet in the middle half of the window
            image, boxes, labels = mosaic(tiles, size, (float(centre[0]), float(centre[1])))
            return image, {"boxes": boxes, "labels": labels}
        image, boxes, labels = self._transformed(index)
        return image, {"boxes": boxes, "labels": labels}

    def _transformed(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``index`` decoded and through ``transform``: ``(image, boxes float [N, 4], labels)``."""
        from torchvision import tv_tensors

        sample = self.samples[index]
        image = decode_image(sample.image, min_side=self.min_side)
        height, width = image.shape[-2:]
        target = sample.target
        boxes = torch.tensor(target.boxes, dtype=torch.float32).reshape(-1, 4)
        if target.width and target.height and (target.width, target.height) != (width, height):
            # Annotations are in the full-size image's pixels; the decode may have been at reduced scale.
            boxes = boxes * torch.tensor([width / target.width, height / target.height] * 2)
        boxes = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width))
        labels = torch.tensor(target.labels, dtype=torch.int64)
        image, boxes, labels = self.transform(tv_tensors.Image(image), boxes, labels)
        return image.as_subclass(torch.Tensor), boxes.as_subclass(torch.Tensor).float(), labels


def detection_collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack same-size images into ``uint8 [B, 3, S, S]``; targets stay a list (their box counts differ)."""
    return torch.stack([item[0] for item in batch]), [item[1] for item in batch]


class SegmentationDataset(Dataset):
    """Items are ``(image uint8 [3, h, w], mask int64 [h, w])`` after ``transform`` (a segmentation preset of
    :mod:`oculi.data.transforms`); mask values are class indices or the ignore index. Samples' targets are
    :class:`~oculi.types.MaskTarget`."""

    def __init__(self, samples: Sequence[Sample], transform: Callable) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        from oculi.data.formats.masks import load_mask

        sample = self.samples[index]
        image = decode_image(sample.image)
        mask = tv_tensors.Mask(torch.from_numpy(load_mask(sample.target))[None])
        image, mask = self.transform(tv_tensors.Image(image), mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)[0]
