"""What the stereo pair can see of each evaluation point: the split behind the study's question.

The dataset stores both views' true depth maps with every view. By them, each point of the evaluation's
uniform sample is one of:

* **seen** empty: in front of the visible surface of the left view or of the right (or on a ray that
  misses the object). A perfect stereo matcher knows such a point is empty;
* **surface**: not seen empty, and within :data:`SURFACE_BAND` behind a visible surface of either view:
  the visible wall itself. A perfect matcher pins where it starts, not how thick it is;
* **hidden**: inside both images and deeper than that behind both visible surfaces. Neither view
  measures anything there; only a shape prior (a mug's back wall, the far side of a bowl) can place it;
* **outside**: the rest (outside an image and not seen empty by the other view; rare, since the objects
  fit the field of view).

A model's IoU then splits exactly into ``iou + iou_lost_seen + iou_lost_surface + iou_lost_hidden +
iou_lost_outside = 1`` (each lost share is that class's wrong points over the union of the predicted
and true volumes). ``iou_given_depth`` is the IoU once every predicted point that either view's depth
shows empty is removed: what reading both visible surfaces perfectly would give a model by carving
alone (it adds nothing where a wall was missed, so the surface class says what is left there). Session
30 measured it (docs/evaluation.md, "What the pair can see").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.rig import project

VISIBILITY_METRICS = ("iou_lost_seen", "iou_lost_surface", "iou_lost_hidden", "iou_lost_outside", "iou_given_depth")
"""The per-item fields :meth:`Visibility.metrics` gives."""

VISIBLE_MARGIN = 0.02
"""Object units a point must lie in front of a view's visible surface to count as seen empty. With it,
and a point counted empty only when the four pixels around its projection all say so, 0.06% of the
truly occupied points of the quick test split are counted empty (a thin wall at a silhouette's edge);
with one pixel, 6.8%."""

SURFACE_BAND = 0.05
"""Object units behind a visible surface that count as its wall: the thickest walls of the procedural
mugs (0.02-0.07) and bowls (0.01-0.05) are about this thick."""


def view_classes(points: np.ndarray, depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
                 margin: float = VISIBLE_MARGIN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(empty, surface, in_image)`` of rig-frame points for one camera and its depth map (0 =
    background).

    A point is seen empty when it projects into the image and, at each of the four pixels around its
    projection, the pixel is background or its depth is more than ``margin`` beyond the point's. It is
    at the surface when, at any of the four, it lies from ``margin`` in front of the visible surface to
    :data:`SURFACE_BAND` behind it.
    """
    uv, z = project(np.asarray(points, dtype=np.float64), K, world_to_cam)
    uv = np.nan_to_num(uv, nan=-1.0, posinf=-1.0, neginf=-1.0)  # a point at the camera's centre
    height, width = depth.shape
    u, v = uv[:, 0], uv[:, 1]  # pixel centres at integer coordinates (data/rig.py)
    in_image = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1) & (z > 0)
    col = np.clip(np.floor(u), 0, width - 2).astype(np.int64)
    row = np.clip(np.floor(v), 0, height - 2).astype(np.int64)
    empty = in_image.copy()
    surface = np.zeros_like(in_image)
    for dr in (0, 1):
        for dc in (0, 1):
            d = depth[row + dr, col + dc]
            empty &= (d == 0) | (z < d - margin)
            surface |= (d > 0) & (z >= d - margin) & (z <= d + SURFACE_BAND)
    return empty, surface & in_image & ~empty, in_image


@dataclass(frozen=True)
class Visibility:
    """Per point (all ``(N,)`` bool, disjoint): seen empty by either view, at a visible surface, or
    hidden deeper behind both; what is none of them is outside an image."""

    seen: np.ndarray
    surface: np.ndarray
    hidden: np.ndarray

    @classmethod
    def of_points(cls, points: np.ndarray, depths: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
                  margin: float = VISIBLE_MARGIN) -> "Visibility":
        """From rig-frame points, both views' depth maps ``(2, H, W)``, ``K (2, 3, 3)`` and
        ``world_to_cam (2, 4, 4)``."""
        empty_left, surface_left, in_left = view_classes(points, depths[0], K[0], world_to_cam[0], margin)
        empty_right, surface_right, in_right = view_classes(points, depths[1], K[1], world_to_cam[1], margin)
        seen = empty_left | empty_right
        surface = (surface_left | surface_right) & ~seen
        return cls(seen=seen, surface=surface, hidden=in_left & in_right & ~seen & ~surface)

    def metrics(self, predicted: np.ndarray, occupied: np.ndarray) -> dict[str, float]:
        """:data:`VISIBILITY_METRICS` of a prediction (both bool ``(N,)``, the uniform points' order)."""
        predicted = np.asarray(predicted, dtype=bool)
        occupied = np.asarray(occupied, dtype=bool)
        if predicted.shape != occupied.shape or predicted.shape != self.seen.shape:
            raise ValueError(f"shapes differ: {predicted.shape}, {occupied.shape}, {self.seen.shape}")
        union = np.count_nonzero(predicted | occupied)
        wrong = predicted != occupied
        outside = ~(self.seen | self.surface | self.hidden)
        carved = predicted & ~self.seen
        carved_union = np.count_nonzero(carved | occupied)

        def lost(where: np.ndarray) -> float:
            return float(np.count_nonzero(wrong & where) / union) if union else 0.0

        given_depth = float(np.count_nonzero(carved & occupied) / carved_union) if carved_union else 1.0
        losses = (lost(self.seen), lost(self.surface), lost(self.hidden), lost(outside))
        return dict(zip(VISIBILITY_METRICS, (*losses, given_depth)))
