"""Stratified splits and class-balanced samples."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from oculi.data.split import stratified_sample, stratified_split
from oculi.errors import ConfigError
from oculi.types import Sample, SampleSet


def synthetic(counts: dict[int, int], multi_label: bool = False) -> SampleSet:
    """A SampleSet of fake paths with ``counts[class]`` images per class (no files needed to split)."""
    samples = [
        Sample(Path(f"/data/{c}/{i}.jpg"), (c,) if multi_label else c)
        for c, n in counts.items()
        for i in range(n)
    ]
    return SampleSet(
        samples,
        [f"class{c}" for c in range(max(counts) + 1)],
        multi_label=multi_label,
        format="folders",
        source="/data",
    )


def per_class(sample_set: SampleSet) -> dict[int, int]:
    return dict(Counter(s.target[0] if isinstance(s.target, tuple) else s.target for s in sample_set.samples))


def test_split_is_stratified_and_complete() -> None:
    data = synthetic({0: 50, 1: 20, 2: 10, 3: 2, 4: 1})
    train, validation = stratified_split(data, 0.2, seed=0)
    assert per_class(validation) == {0: 10, 1: 4, 2: 2}  # round(2 * 0.2) = 0; a single image stays in train
    assert per_class(train) == {0: 40, 1: 16, 2: 8, 3: 2, 4: 1}
    assert {s.image for s in train.samples} | {s.image for s in validation.samples} == {
        s.image for s in data.samples
    }
    assert not {s.image for s in train.samples} & {s.image for s in validation.samples}
    assert train.classes == validation.classes == data.classes and train.format == "folders"


def test_split_keeps_one_training_image_per_class() -> None:
    train, validation = stratified_split(synthetic({0: 2, 1: 3}), 0.9, seed=0)
    assert per_class(train) == {0: 1, 1: 1} and per_class(validation) == {0: 1, 1: 2}


def test_split_is_deterministic_for_a_seed() -> None:
    data = synthetic({0: 40, 1: 40})
    first = stratified_split(data, 0.25, seed=7)[1]
    again = stratified_split(data, 0.25, seed=7)[1]
    other = stratified_split(data, 0.25, seed=8)[1]
    assert first.samples == again.samples and first.samples != other.samples
    images = [s.image for s in first.samples]
    assert images == sorted(images, key=[s.image for s in data.samples].index)  # original order kept


def test_split_of_one_class_does_not_depend_on_the_others() -> None:
    small = stratified_split(synthetic({0: 30}), 0.3, seed=1)[1]
    large = stratified_split(synthetic({0: 30, 1: 17}), 0.3, seed=1)[1]
    assert [s for s in large.samples if s.target == 0] == small.samples


def test_multi_label_stratifies_on_the_first_label() -> None:
    train, validation = stratified_split(synthetic({0: 10, 1: 5}, multi_label=True), 0.4, seed=0)
    assert per_class(validation) == {0: 4, 1: 2} and per_class(train) == {0: 6, 1: 3}
    assert validation.multi_label and all(isinstance(s.target, tuple) for s in validation.samples)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_fraction_out_of_range(fraction: float) -> None:
    with pytest.raises(ConfigError, match=f"`fraction` got {fraction}.*between 0 and 1.*--fraction 0.2"):
        stratified_split(synthetic({0: 4}), fraction, seed=0)
    with pytest.raises(ConfigError, match="--fraction 0.02"):
        stratified_sample(synthetic({0: 4}), fraction, seed=0)


def test_sample_keeps_at_least_one_per_class() -> None:
    data = synthetic({0: 200, 1: 30, 2: 3})
    subset = stratified_sample(data, 0.05, seed=0)
    assert per_class(subset) == {0: 10, 1: 2, 2: 1}
    assert subset.samples == stratified_sample(data, 0.05, seed=0).samples
    assert subset.classes == data.classes
