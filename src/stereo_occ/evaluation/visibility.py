"""What the stereo pair can see of each evaluation point: the split behind the study's question.

The dataset stores both views' true depth maps with every view. By them, each point of the evaluation's
uniform sample is one of:

* **seen**: in front of the visible surface of the left view or of the right (or on a ray that misses
  the object). A perfect stereo matcher knows such a point is empty;
* **hidden**: inside both images and behind the visible surface of both. Neither view measures anything
  there; only a shape prior (a mug's back wall, the inside of a bowl's wall) can place it;
* **outside**: outside one image and not seen empty by the other (rare: the objects fit the field of view).

A model's IoU then splits exactly into ``iou + iou_lost_seen + iou_lost_hidden + iou_lost_outside = 1``
(each lost share is that class's wrong points over the union of the predicted and true volumes). What a
second view can add directly is in ``iou_lost_seen``; ``iou_given_depth`` is the IoU once every
predicted point that either view's depth shows empty is removed: what the model would score with both
visible surfaces read perfectly, so the most that better matching alone could add to it. Session 30
measured it (docs/evaluation.md, "What the pair can see"): 83-89% of the twins' wrong points are hidden
from both views, which is why a better prior lifts both twins alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.rig import project

VISIBILITY_METRICS = ("iou_lost_seen", "iou_lost_hidden", "iou_lost_outside", "iou_given_depth")
"""The per-item fields :meth:`Visibility.metrics` gives (NaN for an item without depth maps)."""

VISIBLE_MARGIN = 0.02
"""Object units a point must lie in front of a view's visible surface to count as seen empty. With it,
and a point counted empty only when the four pixels around its projection all say so, 0.06% of the
truly occupied points of the quick test split are counted empty (a thin wall at a silhouette's edge);
with one pixel, 6.8%."""


def seen_empty(points: np.ndarray, depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
               margin: float = VISIBLE_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """``(empty, in_image)`` of rig-frame points for one camera and its depth map (0 = background).

    A point is seen empty when it projects into the image and, at each of the four pixels around its
    projection, the pixel is background or its depth is more than ``margin`` beyond the point's.
    """
    uv, z = project(np.asarray(points, dtype=np.float64), K, world_to_cam)
    height, width = depth.shape
    u, v = uv[:, 0], uv[:, 1]  # pixel centres at integer coordinates (data/rig.py)
    in_image = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1) & (z > 0)
    col = np.clip(np.floor(u), 0, width - 2).astype(np.int64)
    row = np.clip(np.floor(v), 0, height - 2).astype(np.int64)
    empty = in_image.copy()
    for dr in (0, 1):
        for dc in (0, 1):
            d = depth[row + dr, col + dc]
            empty &= (d == 0) | (z < d - margin)
    return empty, in_image


@dataclass(frozen=True)
class Visibility:
    """Per point: seen empty by either view, or hidden behind both visible surfaces."""

    seen: np.ndarray  # (N,) bool
    hidden: np.ndarray  # (N,) bool

    @classmethod
    def of_points(cls, points: np.ndarray, depths: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
                  margin: float = VISIBLE_MARGIN) -> "Visibility":
        """From rig-frame points, both views' depth maps ``(2, H, W)``, ``K (2, 3, 3)`` and
        ``world_to_cam (2, 4, 4)``."""
        empty_left, in_left = seen_empty(points, depths[0], K[0], world_to_cam[0], margin)
        empty_right, in_right = seen_empty(points, depths[1], K[1], world_to_cam[1], margin)
        seen = empty_left | empty_right
        return cls(seen=seen, hidden=in_left & in_right & ~seen)

    def metrics(self, predicted: np.ndarray, occupied: np.ndarray) -> dict[str, float]:
        """``iou_lost_seen``, ``iou_lost_hidden``, ``iou_lost_outside`` and ``iou_given_depth`` of a
        prediction (both bool ``(N,)``, the uniform points' order)."""
        predicted = np.asarray(predicted, dtype=bool)
        occupied = np.asarray(occupied, dtype=bool)
        if predicted.shape != occupied.shape or predicted.shape != self.seen.shape:
            raise ValueError(f"shapes differ: {predicted.shape}, {occupied.shape}, {self.seen.shape}")
        union = np.count_nonzero(predicted | occupied)
        wrong = predicted != occupied
        outside = ~self.seen & ~self.hidden
        carved = predicted & ~self.seen
        carved_union = np.count_nonzero(carved | occupied)

        def lost(where: np.ndarray) -> float:
            return float(np.count_nonzero(wrong & where) / union) if union else 0.0

        given_depth = float(np.count_nonzero(carved & occupied) / carved_union) if carved_union else 1.0
        return dict(zip(VISIBILITY_METRICS, (lost(self.seen), lost(self.hidden), lost(outside), given_depth)))
