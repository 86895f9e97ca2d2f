"""The decision threshold: occupied where the predicted probability is at least it.

Occupancy Networks chose its threshold (0.2) on the validation split. The right value depends on the
model and on how far it has trained: a partly trained model spreads its probability around a thin
wall, so a low threshold fattens every wall of a mug or a bowl, while a high one hollows a bottle.
So, unless ``eval.threshold`` fixes it, every validation of a run measures IoU on the same points at
each threshold of :data:`THRESHOLDS` and keeps the best; the threshold chosen with the best
checkpoint is stored in it (``"threshold"``) and used by ``evaluate``, the experiment and
``reconstruct``. The test split never takes part, so test numbers stay unbiased.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from ..config import EvalConfig
from ..errors import UserError

DEFAULT_THRESHOLD = 0.2
"""Occupancy Networks' threshold: used by a run that had no validation split to choose one."""

THRESHOLDS: tuple[float, ...] = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))
"""The thresholds a validation tries: 0.10, 0.15, ..., 0.90."""


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold < 1.0:
        raise UserError(f"eval.threshold must be in (0, 1) (got {threshold})")
    return float(threshold)


def validation_thresholds(eval_cfg: EvalConfig) -> tuple[float, ...]:
    """What a validation measures: the fixed ``eval.threshold``, or every one of :data:`THRESHOLDS`."""
    if eval_cfg.threshold is None:
        return THRESHOLDS
    return (check_threshold(eval_cfg.threshold),)


def choose_threshold(thresholds: Sequence[float], ious: Sequence[float]) -> tuple[float, float]:
    """(threshold, IoU) of the best mean IoU; on a tie the threshold nearest 0.5 (the unbiased one)."""
    if len(thresholds) != len(ious) or not len(ious):
        raise ValueError("one IoU per threshold, at least one")
    order = sorted(range(len(ious)), key=lambda i: (-ious[i], abs(thresholds[i] - 0.5)))
    best = order[0]
    return float(thresholds[best]), float(ious[best])


def ious_at(probs: np.ndarray, occupied: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """IoU of ``probs >= t`` against ``occupied`` (both ``(..., N)``) for each ``t``: ``(T, ...)``.

    An item where prediction and truth are both empty counts as 1.
    """
    gt = np.asarray(occupied, dtype=bool)
    out = []
    for t in thresholds:
        pred = np.asarray(probs) >= t
        inter = np.logical_and(pred, gt).sum(-1)
        union = np.logical_or(pred, gt).sum(-1)
        out.append(np.where(union > 0, inter / np.maximum(union, 1), 1.0))
    return np.asarray(out, dtype=np.float64)


def resolved(eval_cfg: EvalConfig, checkpoint_threshold: float | None) -> EvalConfig:
    """``eval_cfg`` with its threshold set: its own when fixed, else the checkpoint's (or the default)."""
    if eval_cfg.threshold is not None:
        check_threshold(eval_cfg.threshold)
        return eval_cfg
    chosen = DEFAULT_THRESHOLD if checkpoint_threshold is None else check_threshold(checkpoint_threshold)
    return replace(eval_cfg, threshold=chosen)
