"""Train/val/test splits by object, per category, seeded.

Splitting by object (never by view) keeps every view of a test object out of training. Each category
is split on its own so all three splits see every category in the configured proportions. The order
inside a category comes from a hash of ``(seed, object_id)`` rather than from shuffling a list, so an
object's split depends only on the seed and its rank: adding or removing one object moves few others.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from ..config import SplitConfig

SPLITS: tuple[str, ...] = ("train", "val", "test")


def _rank_key(seed: int, object_id: str) -> str:
    return hashlib.sha256(f"{seed}:{object_id}".encode()).hexdigest()


def _counts(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """(train, val, test) sizes for a category of ``n`` objects.

    Rounded shares; a category of 3 or more objects gets at least one val and one test object (when
    their share is non-zero), so every split can report every category.
    """
    n_val = round(n * cfg.val)
    n_test = round(n * cfg.test)
    if n >= 3:
        if cfg.val > 0:
            n_val = max(n_val, 1)
        if cfg.test > 0:
            n_test = max(n_test, 1)
    if cfg.train > 0 and n_val + n_test >= n and n >= 3:
        # Keep at least one training object; take it from the larger of val/test.
        while n_val + n_test >= n:
            if n_val >= n_test and n_val > 1:
                n_val -= 1
            elif n_test > 1:
                n_test -= 1
            else:
                break
    n_val = min(n_val, n)
    n_test = min(n_test, n - n_val)
    return n - n_val - n_test, n_val, n_test


def assign_splits(objects: dict[str, str], cfg: SplitConfig) -> dict[str, list[str]]:
    """Map ``{object_id: category}`` to ``{"train": [...], "val": [...], "test": [...]}`` (sorted ids)."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for object_id, category in objects.items():
        by_category[category].append(object_id)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for category in sorted(by_category):
        ids = sorted(by_category[category], key=lambda i: _rank_key(cfg.seed, i))
        n_train, n_val, _ = _counts(len(ids), cfg)
        out["train"] += ids[:n_train]
        out["val"] += ids[n_train : n_train + n_val]
        out["test"] += ids[n_train + n_val :]
    return {s: sorted(v) for s, v in out.items()}
