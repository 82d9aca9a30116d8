"""An exactly resumable training data order.

A stop in the middle of an epoch (``oculi jobs stop``, SIGTERM) must continue, on resume, with the very batches the
uninterrupted run would have trained on next, with the same augmentations. Two things make that hold:

- :class:`EpochSampler` draws each epoch's order from a generator seeded with ``seed + epoch`` (nothing carried
  over from earlier epochs), shards it across DDP ranks like ``DistributedSampler``, and can start part-way into an
  epoch. It yields ``(index, sample_seed)`` pairs.
- :class:`SeededSamples` wraps the dataset: each sample is loaded and augmented under its own torch seed
  (``sample_seed``, a function of seed, epoch and position), inside ``torch.random.fork_rng`` so the model's
  random stream (dropout) is untouched. Augmentations therefore do not depend on which worker process, or which
  attempt of the job, loads the sample — ``num_workers`` no longer changes the result either.

:class:`ResumableLoader` is the ``DataLoader`` that puts them together (:func:`training_loader` builds it from
what an algorithm declares, a :class:`~oculi.algorithms.base.LoaderSpec`: the engine owns every loader); it
implements Lightning's stateful-loader interface (``state_dict`` / ``load_state_dict``), so its position (epoch,
batches trained) is saved in every checkpoint; :func:`restore_position` puts it back before the first batch is
drawn. :class:`DataPosition` is the callback that tells it how many batches of the epoch have been trained (the
loader itself runs ahead: Lightning prefetches a batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

if TYPE_CHECKING:
    from oculi.algorithms.base import LoaderSpec

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The torch seed of the sample at global ``position`` of ``epoch``'s order (stable across runs, processes
    and Python versions)."""
    return ((seed * 1_000_003 + epoch) * 1_000_033 + position) & _MASK


class SeededSamples(Dataset):
    """``dataset`` whose items are fetched by ``(index, sample_seed)``: the item is built with torch's random
    generator seeded to ``sample_seed`` (torchvision ``transforms.v2`` and oculi's transforms draw from it), and
    the caller's generator state is restored afterwards."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class EpochSampler(DistributedSampler):
    """Each epoch's order from ``torch.Generator().manual_seed(seed + epoch)``: a permutation (``shuffle``),
    ``num_samples`` weighted draws with replacement (``weights``), or ``0 … size-1`` in order. The order is padded
    to a multiple of ``world_size`` (repeating its start, like ``DistributedSampler``) and rank ``rank`` takes every
    ``world_size``-th element. Yields ``(index, sample_seed)``; :meth:`resume` makes the next pass over ``epoch``
    start after its first ``skip`` elements (of this rank).

    A ``DistributedSampler`` subclass so that Lightning keeps it under DDP instead of replacing it."""

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, weights: torch.Tensor | None = None,
                 num_samples: int | None = None, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(range(size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        self.size = size
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.draws = num_samples if num_samples is not None else size
        self.total = math.ceil(self.draws / world_size) * world_size
        self.num_samples = self.total // world_size  # this rank's share (DistributedSampler's attribute)
        self._resume: tuple[int, int] | None = None

    def order(self, epoch: int) -> list[int]:
        """The whole epoch's order (all ranks), padded to a multiple of the world size."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.draws, replacement=True, generator=generator).tolist()
        elif self.shuffle:
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        while len(order) < self.total:
            order += order[: self.total - len(order)]
        return order

    def resume(self, epoch: int, skip: int) -> None:
        """Start at ``epoch``, skipping this rank's first ``skip`` samples of it (those already trained on)."""
        self.epoch = epoch
        self._resume = (epoch, skip) if skip else None

    def __len__(self) -> int:
        return self.num_samples  # always the full epoch: Lightning counts the epoch's batches from it

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        skip = self._resume[1] if self._resume and self._resume[0] == epoch else 0
        self._resume = None
        order = self.order(epoch)
        for position in range(self.rank + skip * self.num_replicas, self.total, self.num_replicas):
            yield order[position], sample_seed(self.seed, epoch, position)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over :class:`SeededSamples` with an :class:`EpochSampler`, whose position is saved in
    Lightning checkpoints: ``state_dict()`` = ``{"epoch", "batches"}`` (batches of that epoch already trained, as
    reported by :class:`DataPosition`)."""

    batches_done = 0

    def state_dict(self) -> dict[str, int]:
        """Where training is in the data: the sampler's epoch and the batches of it trained so far."""
        return {"epoch": int(self.sampler.epoch), "batches": int(self.batches_done)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after ``state["batches"]`` batches of ``state["epoch"]`` (the next epoch when it was done)."""
        epoch, done = int(state["epoch"]), int(state["batches"])
        if done >= len(self):
            epoch, done = epoch + 1, 0
        self.batches_done = done
        self.sampler.resume(epoch, done * self.batch_size)


def restore_position(loader: DataLoader, checkpoint: Any) -> None:
    """Put ``loader`` (a :class:`ResumableLoader`) at the data position saved in the Lightning checkpoint file
    ``checkpoint``, before ``trainer.fit`` starts. Lightning would do it itself, but only when it builds the
    training iterator after restoring the loops, and a ``configure_optimizers`` that reads
    ``trainer.estimated_stepping_batches`` (the step-wise schedules) makes it build the iterator before."""
    if not isinstance(loader, ResumableLoader):
        return
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    states = saved.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader") or []
    if states:
        loader.load_state_dict(states[0])


class DataPosition(L.Callback):
    """Tells a :class:`ResumableLoader` how many batches of the current epoch have been trained (after each
    optimizer step, before any checkpoint of that step is written)."""

    def __init__(self, loader: ResumableLoader) -> None:
        self.loader = loader

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.loader.batches_done = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.loader.batches_done = batch_idx + 1


def training_loader(spec: LoaderSpec, *, seed: int, num_workers: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> ResumableLoader:
    """The training loader for an algorithm's :class:`~oculi.algorithms.base.LoaderSpec`: a
    :class:`ResumableLoader` drawing this rank's shard of each epoch's order (weighted with replacement when the
    spec has ``weights``, else a permutation when it shuffles, else in order) in batches of ``batch_size`` (this
    process's share of ``spec.batch_size``). The last, short batch is dropped when there is more than one batch."""
    size = len(spec)
    if spec.weights is not None:
        order = EpochSampler(size, seed=seed, weights=torch.as_tensor(spec.weights, dtype=torch.double),
                             num_samples=size, rank=rank, world_size=world_size)
    else:
        order = EpochSampler(size, seed=seed, shuffle=spec.shuffle, rank=rank, world_size=world_size)
    return ResumableLoader(SeededSamples(spec.dataset), batch_size=batch_size, sampler=order,
                           **_loading(spec, seed, num_workers),
                           drop_last=size > spec.batch_size and len(order) > batch_size)


def validation_loader(spec: LoaderSpec, *, seed: int, num_workers: int) -> DataLoader:
    """The validation loader for ``spec``: the dataset in order, ``spec.batch_size`` per step, every sample kept
    (under DDP Lightning shards it with a ``DistributedSampler``)."""
    return DataLoader(spec.dataset, batch_size=spec.batch_size, shuffle=False, **_loading(spec, seed, num_workers))


def _loading(spec: LoaderSpec, seed: int, num_workers: int) -> dict[str, Any]:
    """The DataLoader options both loaders share: collate function, worker processes (kept alive between epochs),
    pinned memory on a GPU machine, and a generator seeded with ``seed`` (the workers' base seed comes from it,
    not from the global generator, so loading does not shift the model's random stream)."""
    return {"collate_fn": spec.collate_fn, "num_workers": num_workers, "persistent_workers": num_workers > 0,
            "pin_memory": torch.cuda.is_available(), "generator": torch.Generator().manual_seed(seed)}
