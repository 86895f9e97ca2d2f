"""Results of a frozen computation on one stereo pair, kept by the pair's content.

Some of what a camera-aware model computes from its inputs has no weights that train: the classical
plane sweep of the raw pair (``model.sweep_planes``, :mod:`.plane_sweep`) and the frozen axis
estimator's answer. Training shows each of the dataset's pairs to the network again and again (the
quick config: 864 pairs, 12,000 draws in 750 steps), and the images never change, so these results
are computed once per pair and then looked up.

The key is a hash of the pair's bytes (both images and both cameras) with a ``salt`` naming the
computation and its settings, so a hit can only ever return what the computation gives for exactly
those inputs: nothing to invalidate, nothing keyed by a dataset index that a shuffled or resumed run
could get wrong. What a miss computes is computed on the sub-batch of missing pairs, so the cached
results equal the uncached ones bit for bit only if the computation treats each pair of a batch on
its own, independently of the others and of the batch's size; ``tests/test_pair_cache.py`` checks
that for every computation cached here, since exact resume after a kill depends on it.

The cache lives on the CPU, holds at most ``max_bytes`` (least recently used pairs leave first) and
is bypassed for tensors on another device, where these computations cost next to nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

DEFAULT_MAX_BYTES = 1 << 30
"""1 GiB: the quick config's 864 pairs need 85 MB of sweeps at 64 px, the long config's 6,096 about 600 MB."""


class PairCache:
    """``cache(compute, inputs, salt)`` -> ``compute(*inputs)``, each pair's share looked up when seen before.

    ``inputs`` are tensors whose first dimension is the batch of pairs; ``compute`` takes the same
    tensors for any sub-batch and returns a tuple of tensors whose first dimension is that sub-batch.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._store: OrderedDict[bytes, tuple[Tensor, ...]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self._bytes = 0

    @staticmethod
    def _key(salt: bytes, inputs: Sequence[Tensor], i: int) -> bytes:
        digest = hashlib.blake2b(salt, digest_size=20)
        for tensor in inputs:
            item = tensor[i].contiguous()
            digest.update(str((item.dtype, tuple(item.shape))).encode())
            digest.update(item.numpy().tobytes())
        return digest.digest()

    def __call__(self, compute: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor],
                 salt: str) -> tuple[Tensor, ...]:
        if self.max_bytes <= 0 or any(t.device.type != "cpu" or t.requires_grad for t in inputs):
            return compute(*inputs)
        salt_bytes = salt.encode()
        batch = inputs[0].shape[0]
        keys = [self._key(salt_bytes, inputs, i) for i in range(batch)]
        found: list[tuple[Tensor, ...] | None] = []
        for key in keys:
            entry = self._store.get(key)
            if entry is not None:
                self._store.move_to_end(key)
            found.append(entry)
        missing = [i for i, entry in enumerate(found) if entry is None]
        self.hits += batch - len(missing)
        self.misses += len(missing)
        if missing:
            index = torch.tensor(missing)
            computed = compute(*(t.index_select(0, index) if len(missing) < batch else t for t in inputs))
            for row, i in enumerate(missing):
                entry = tuple(out[row].clone() for out in computed)
                found[i] = entry
                self._put(keys[i], entry)
        return tuple(torch.stack(parts) for parts in zip(*found))

    def _put(self, key: bytes, entry: tuple[Tensor, ...]) -> None:
        size = sum(t.numel() * t.element_size() for t in entry)
        if size > self.max_bytes:
            return
        self._store[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self._bytes -= sum(t.numel() * t.element_size() for t in old)
