"""A classical plane sweep of the raw stereo pair: where each view's visible surface is, with no learning.

The camera-aware stereo model has to learn to match its two views, and on 2 CPU cores it has 750
steps to do it: session 31 found that placing the visible wall from the pair is learned only after
2,000 steps on hundreds of objects, although the raw pair already says where it is (a 3x3 plane
sweep of the renders puts 38% of the object's pixels within a wall's thickness of the true depth,
63% on printed objects, against 19% for the best single depth: ``bench/bench_matching_signal.py``).
This module computes that sweep inside the network, so the model reads the pair's depth from the
first step:

* for each pixel of one view, fronto-parallel planes in that camera over the sphere any object lies
  in; the pixel lifted onto every plane and projected into the other camera with the calibrated
  ``K`` and ``world_to_cam``; the sum of squared RGB differences averaged over a ``window`` x
  ``window`` patch; the plane of least cost wins (with ``model.sweep_refine``, the vertex of the
  parabola through its cost and its neighbours' places the surface between planes);
* per query point (:func:`sweep_features`), for each view: how far the point lies behind the swept
  surface under it (negative in front, along that camera's axis), and the matching cost there (the
  best and the average over the planes, as logarithms: a low best against a high average is a
  confident match; both costs near zero, their logarithms near log(1e-3), is a one-coloured region
  such as the white background, which matches at every depth).

It has no parameters and needs no gradient. The mono twin cannot have it: it is what the second view
adds, computed the classical way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import LEFT, RIGHT, Cameras

SWEEP_CHANNELS = 3
"""Per view and point: the offset behind the swept surface, log best cost, log mean cost."""

SWEEP_WINDOW = 3
"""Pixels a side of the patch whose squared differences make a plane's cost (bench/bench_matching_signal.py:
3x3 puts the most printed pixels within a wall's thickness of the true depth, 63% against 59% for 5x5)."""

OFFSET_SCALE = 0.25
"""Offsets behind the swept surface are clamped to +-this (object units) and divided by it: beyond it
the point is well in front of or behind what the view shows."""


def plane_depths(cameras: Cameras, view: int, planes: int, extent: float) -> Tensor:
    """``(B, planes)`` depths in front of ``view``: the object centre's depth +- ``extent``."""
    offsets = torch.linspace(-extent, extent, planes, device=cameras.K.device)
    return cameras.world_to_cam[:, view, 2, 3, None].float() + offsets[None]


def plane_pixels(cameras: Cameras, view: int, depths: Tensor) -> Tensor:
    """``(B, D, H, W, 2)``: where each pixel of ``view``, lifted to each depth of ``depths`` ``(B, D)``,
    lands in the other view (column, row).

    A fronto-parallel plane is a homography between the two images: pixel ``x`` at depth ``d`` in
    camera A is ``X = d K_A^-1 x``, and lands at ``K_B (R X + t) = d (K_B R K_A^-1) x + K_B t`` in
    camera B (``R, t``: A's camera frame to B's). One 3x3 product per pixel, then only products and
    sums per plane: the per-plane projection of every lifted point costs twice the sweep otherwise.
    """
    other = 1 - view
    width, height = cameras.image_size
    a_w2c, b_w2c = cameras.world_to_cam[:, view].float(), cameras.world_to_cam[:, other].float()
    a_to_b = b_w2c @ torch.linalg.inv(a_w2c)  # (B, 4, 4)
    k_b = cameras.K[:, other].float()
    homography = k_b @ a_to_b[:, :3, :3] @ torch.linalg.inv(cameras.K[:, view].float())  # (B, 3, 3)
    shift = (k_b @ a_to_b[:, :3, 3:])[..., 0]  # (B, 3)
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=depths.device),
                          torch.arange(width, dtype=torch.float32, device=depths.device), indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], -1) @ homography[:, None].transpose(-1, -2)  # (B, H, W, 3)
    landed = depths[:, :, None, None, None] * rays[:, None] + shift[:, None, None, None]  # (B, D, H, W, 3)
    return landed[..., :2] / landed[..., 2:].clamp(min=1e-6)


def sweep_costs(images: Tensor, other: Tensor, cameras: Cameras, view: int, depths: Tensor, window: int) -> Tensor:
    """``(B, D, H, W)`` patch costs of ``images`` (seen by ``view``) against ``other`` (the other view) on each plane."""
    b, c, h, w = images.shape
    grid = cameras.grid(plane_pixels(cameras, view, depths)).reshape(b, -1, w, 2)  # (B, D*H, W, 2)
    seen = F.grid_sample(other, grid, mode="bilinear", padding_mode="border", align_corners=False)
    ssd = ((seen.reshape(b, c, -1, h, w) - images[:, :, None]) ** 2).sum(1)
    if window > 1:
        ssd = F.avg_pool2d(ssd, window, stride=1, padding=window // 2, count_include_pad=False)
    return ssd


def sub_plane_offset(cost: Tensor, index: Tensor) -> Tensor:
    """``(B, H, W)`` where between the planes the cost's minimum lies, in plane spacings from the best
    plane ``index``: the vertex of the parabola through the costs of the best plane and its two
    neighbours, within +-0.5 (0 on the first and last plane, or where the costs are flat).

    With 32 planes over the object's sphere the planes are 0.048 apart, as thick as a mug's wall
    (0.02-0.07); the parabola places the surface between them for three gathers.
    """
    planes = cost.shape[1]
    if planes < 3:
        return torch.zeros_like(cost[:, 0])
    inner = index.clamp(1, planes - 2)[:, None]
    below, at, above = (cost.gather(1, inner + k)[:, 0] for k in (-1, 0, 1))
    curvature = below - 2 * at + above
    offset = 0.5 * (below - above) / curvature.clamp(min=1e-12)
    offset = torch.where(curvature > 1e-12, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))
    return torch.where((index > 0) & (index < planes - 1), offset, torch.zeros_like(offset))


@torch.no_grad()
def plane_sweep(left: Tensor, right: Tensor, cameras: Cameras, planes: int, extent: float,
                window: int = SWEEP_WINDOW, refine: bool = False) -> tuple[Tensor, Tensor]:
    """Both views' swept surfaces: ``(B, 3, H, W)`` maps each (depth, log best cost, log mean cost).

    The depth is the best plane's, or with ``refine`` (at least 3 planes) the vertex of the parabola
    through its cost and its neighbours' (:func:`sub_plane_offset`)."""
    with torch.autocast(left.device.type, enabled=False):
        left, right = left.float(), right.float()
        out = []
        for view, images, other in ((LEFT, left, right), (RIGHT, right, left)):
            depths = plane_depths(cameras, view, planes, extent)
            cost = sweep_costs(images, other, cameras, view, depths, window)
            best, index = cost.min(1)
            depth = depths.gather(1, index.flatten(1)).reshape(best.shape)
            if refine:
                depth = depth + (depths[:, 1] - depths[:, 0])[:, None, None] * sub_plane_offset(cost, index)
            out.append(torch.stack([depth, torch.log(best + 1e-3), torch.log(cost.mean(1) + 1e-3)], 1))
        return out[0], out[1]


def sweep_features(points: Tensor, left_sweep: Tensor, right_sweep: Tensor, cameras: Cameras) -> Tensor:
    """Per rig-frame point ``(B, N, 2 * SWEEP_CHANNELS)``: for each view, how far behind the swept surface
    under it the point lies (scaled, clamped) and the sweep's two costs there."""
    features = []
    for view, maps in ((LEFT, left_sweep), (RIGHT, right_sweep)):
        sampled = cameras.sample(maps, points, view)  # (B, N, 3)
        _, z = cameras.project(points, view)
        behind = ((z - sampled[..., 0]) / OFFSET_SCALE).clamp(-1.0, 1.0)
        features += [behind[..., None], sampled[..., 1:]]
    return torch.cat(features, -1)
