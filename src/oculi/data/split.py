"""Stratified train/validation splits and class-balanced subsets of a :class:`SampleSet` (classification or
detection).

Stratification is per class (multi-label images by their first label). Each class is shuffled with its own
random generator seeded from ``(seed, class)``, so the result is the same for a seed on every run and machine, and
adding images of one class does not move the images of another. Samples keep their original order in the output."""

from __future__ import annotations

import random
from collections import defaultdict

from oculi.errors import ConfigError
from oculi.types import BoxTarget, MaskTarget, Sample, SampleSet


def _check_fraction(fraction: float, example: float) -> None:
    if not 0 < fraction < 1:
        raise ConfigError(
            f"`fraction` got {fraction}; expected a number between 0 and 1 (exclusive). Pass `--fraction {example}`."
        )


def _by_class(samples: list[Sample]) -> dict[int, list[int]]:
    """Sample positions per stratum: the class index, or a multi-label image's (or detection / segmentation
    image's) first label (-1 when it has none: negatives form their own stratum)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for position, sample in enumerate(samples):
        target = sample.target
        if isinstance(target, BoxTarget | MaskTarget):
            target = target.labels
        key = (target[0] if target else -1) if isinstance(target, tuple) else target
        groups[key].append(position)
    return groups


def _pick(sample_set: SampleSet, fraction: float, seed: int, *, at_least_one: bool) -> set[int]:
    """Positions of the samples chosen: ``round(n * fraction)`` of each class of ``n`` images, at least one when
    ``at_least_one``, otherwise at most ``n - 1`` (a class keeps one image in the remainder)."""
    chosen: set[int] = set()
    for key, positions in sorted(_by_class(sample_set.samples).items()):
        n = len(positions)
        k = int(n * fraction + 0.5)
        k = max(k, 1) if at_least_one else min(k, n - 1)
        shuffled = list(positions)
        random.Random(f"{seed}:{key}").shuffle(shuffled)
        chosen.update(shuffled[:k])
    return chosen


def stratified_split(sample_set: SampleSet, fraction: float, seed: int) -> tuple[SampleSet, SampleSet]:
    """Split into ``(first, second)`` where ``second`` gets ``fraction`` of each class's images (rounded; a class
    with ≥ 2 images keeps at least one in ``first``, a class with one image stays in ``first``). Deterministic for
    a ``seed``. Both sets keep the class names; reader findings are dropped."""
    _check_fraction(fraction, 0.2)
    chosen = _pick(sample_set, fraction, seed, at_least_one=False)
    samples = sample_set.samples
    first = [s for i, s in enumerate(samples) if i not in chosen]
    second = [s for i, s in enumerate(samples) if i in chosen]
    return sample_set.with_samples(first), sample_set.with_samples(second)


def stratified_sample(sample_set: SampleSet, fraction: float, seed: int) -> SampleSet:
    """A subset with ``fraction`` of each class's images (rounded, at least one per class that has images).
    Deterministic for a ``seed``; keeps the class names."""
    _check_fraction(fraction, 0.02)
    chosen = _pick(sample_set, fraction, seed, at_least_one=True)
    return sample_set.with_samples([s for i, s in enumerate(sample_set.samples) if i in chosen])
