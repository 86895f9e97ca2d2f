"""Resumable, distributed sample order.

Training must continue after an interruption exactly as if it had never stopped, on any number of
processes. So the order of samples is a pure function of ``(seed, epoch)``, split across ranks the way
``torch.utils.data.DistributedSampler`` does it (pad by repeating, or drop the tail), and an iteration
count maps to a position in that order. Nothing about the order lives in a DataLoader or a worker.

:class:`ResumableDistributedSampler` is the per-epoch sampler (it can start mid-epoch); given item
weights (:func:`category_weights`) it draws each epoch with replacement in proportion to them instead
of permuting, still as a pure function of ``(seed, epoch)``.
:class:`EpochStream` chains its epochs into one stream of ``(epoch, index)`` keys starting at any
position, and :class:`EpochKeyed` wraps a dataset so each item is drawn with its own epoch's
randomness even when one DataLoader pass spans several epochs (a dataset smaller than a batch, or a
run that crosses epoch boundaries, with worker processes that never see ``set_epoch``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterator, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler

from ..errors import UserError


class ResumableDistributedSampler(Sampler[int]):
    """This rank's share of a seeded permutation of ``range(n)``, from an offset within the epoch.

    With ``drop_last=False`` the permutation is padded (by repeating it from the start) to a multiple
    of ``num_replicas``; with ``drop_last=True`` its tail is dropped. Rank ``r`` takes every
    ``num_replicas``-th index starting at ``r``.
    """

    def __init__(
        self,
        n: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        weights: np.ndarray | None = None,
    ):
        if n <= 0:
            raise ValueError("cannot sample from an empty dataset")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (n,) or not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
                raise ValueError(f"weights must be {n} finite non-negative numbers, not all zero")
            weights = weights / weights.sum()
        self.weights = weights
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.n, self.num_replicas, self.rank = n, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        if drop_last:
            self.num_samples = n // num_replicas
            if self.num_samples == 0:
                raise ValueError(f"{n} samples cannot be split over {num_replicas} ranks with drop_last")
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Use epoch ``epoch``'s order and skip its first ``start`` samples (of this rank)."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start {start} is outside this rank's {self.num_samples} samples")
        self.epoch, self.start = epoch, start

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """All of this rank's indices for ``epoch`` (ignores ``start``)."""
        if self.weights is not None:
            order = np.random.default_rng([self.seed, epoch]).choice(self.n, size=self.total_size, p=self.weights)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.drop_last:
            order = order[: self.total_size]
        else:
            order = np.resize(order, self.total_size)  # repeats from the start to pad
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self.epoch_indices(self.epoch)[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


def category_weights(item_categories: Sequence[str], shares: Mapping[str, float]) -> np.ndarray | None:
    """Per-item sampling weights that give each category its share of the samples (``None``: no shares).

    A category's share is split evenly over its items, so a category with fewer objects is not
    drawn less often. Every category among the items must have a share.
    """
    if not shares:
        return None
    counts = Counter(item_categories)
    missing = sorted(c for c in counts if c not in shares)
    if missing:
        raise UserError(
            f"data.category_shares names {', '.join(sorted(shares))} but the training split also has "
            f"{', '.join(missing)}: give every training category a share"
        )
    return np.array([float(shares[c]) / counts[c] for c in item_categories])


class EpochStream(Sampler[tuple[int, int]]):
    """``length`` keys ``(epoch, index)`` from position ``start`` of the sampler's epochs back to back.

    Position ``p`` is sample ``p % num_samples`` of epoch ``p // num_samples`` (per rank), so a run that
    has done ``i`` steps of ``b`` samples continues at ``start = i * b``.
    """

    def __init__(self, sampler: ResumableDistributedSampler, start: int, length: int):
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        self.sampler, self.start, self.length = sampler, start, length

    def position(self, position: int) -> tuple[int, int]:
        """(epoch, offset within the epoch) of a stream position."""
        return divmod(position, self.sampler.num_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position, end = self.start, self.start + self.length
        while position < end:
            epoch, offset = self.position(position)
            indices = self.sampler.epoch_indices(epoch)
            take = min(len(indices) - offset, end - position)
            for i in indices[offset : offset + take]:
                yield epoch, int(i)
            position += take

    def __len__(self) -> int:
        return self.length


class EpochKeyed(Dataset):
    """A dataset indexed by ``(epoch, index)``: sets the epoch, then returns ``dataset[index]``.

    The wrapped dataset's item randomness is a function of (seed, epoch, index), so this gives the
    same item in the main process or any worker.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._epoch: int | None = None

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if epoch != self._epoch:
            _set_epoch(self.dataset, epoch)
            self._epoch = epoch
        return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


def _set_epoch(dataset: Dataset, epoch: int) -> None:
    """``set_epoch`` on a dataset, looking through ``torch.utils.data.Subset`` wrappers."""
    while not hasattr(dataset, "set_epoch") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset  # type: ignore[attr-defined]
    dataset.set_epoch(epoch)  # type: ignore[attr-defined]
