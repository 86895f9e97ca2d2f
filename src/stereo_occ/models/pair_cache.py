"""Results of a frozen computation on one stereo pair, kept by the pair's content.

Some of what a camera-aware model computes from its inputs has no weights that train, such as the
classical plane sweep of the raw pair (``model.sweep_planes``, :mod:`.plane_sweep`). Training shows
each of the dataset's pairs to the network again and again (the quick config: 864 pairs, 12,000
draws in 750 steps), and the images never change, so such results are computed once per pair and
then looked up. (The frozen axis estimator's answer is not cached: its convolutions give a pair
alone a result that differs in the last bits from the same pair's row of a batch, and the next
paragraph says why that matters.)

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

    @property
    def nbytes(self) -> int:
        """Bytes the cached results hold."""
        return self._bytes

    def clear(self) -> None:
        self._store.clear()
        self._bytes = 0

    @staticmethod
    def _key(salt: bytes, inputs: Sequence[Tensor], i: int) -> bytes:
        digest = hashlib.blake2b(salt, digest_size=20)
        for tensor in inputs:
            item = tensor[i].contiguous()
            digest.update(str((item.dtype, tuple(item.shape))).encode())
            digest.update(item.reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bf16 too
        return digest.digest()

    def __call__(self, compute: Callable[..., tuple[Tensor, ...]], inputs: Sequence[Tensor],
                 salt: str) -> tuple[Tensor, ...]:
        batch = inputs[0].shape[0]
        if self.max_bytes <= 0 or batch == 0 or any(t.device.type != "cpu" or t.requires_grad for t in inputs):
            return compute(*inputs)
        salt_bytes = salt.encode()
        keys = [self._key(salt_bytes, inputs, i) for i in range(batch)]
        entries: dict[bytes, tuple[Tensor, ...]] = {}
        for key in keys:
            entry = self._store.get(key)
            if entry is not None:
                self._store.move_to_end(key)
                entries[key] = entry
        # each missing pair computed once, also where a batch holds it twice
        missing = {key: i for i, key in enumerate(keys) if key not in entries}
        self.hits += batch - sum(key in missing for key in keys)
        self.misses += sum(key in missing for key in keys)
        if missing:
            rows = list(missing.values())
            computed = compute(*(t.index_select(0, torch.tensor(rows)) if len(rows) < batch else t for t in inputs))
            for row, key in enumerate(missing):
                entries[key] = tuple(out[row].clone() for out in computed)
                self._put(key, entries[key])
        return tuple(torch.stack(parts) for parts in zip(*(entries[key] for key in keys)))

    def _put(self, key: bytes, entry: tuple[Tensor, ...]) -> None:
        size = sum(t.numel() * t.element_size() for t in entry)
        if size > self.max_bytes or key in self._store:
            return
        self._store[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._store.popitem(last=False)
            self._bytes -= sum(t.numel() * t.element_size() for t in old)
