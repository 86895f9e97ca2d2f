"""Correlation cost volumes over horizontal shifts.

Sign convention (used everywhere in the project): slice ``k`` of a volume holds shift
``d = k - max_shift``, and compares ``left[..., y, x]`` with ``right[..., y, x - d]``. So ``d`` is the
usual disparity ``x_left - x_right``: positive when a point appears further left in the right image.
The study's rig is toed-in, so points in front of the object centre have ``d > 0`` and points behind
it ``d < 0``; the range is symmetric. Where ``x - d`` falls outside the image the volume is zero.

Vectorised: one tensor product per shift (2 * max_shift + 1 of them), never a loop over pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def groupwise_correlation_volume(left_feat: Tensor, right_feat: Tensor, max_shift: int, groups: int) -> Tensor:
    """``(B, C, H, W)`` x2 -> ``(B, groups, 2 * max_shift + 1, H, W)``.

    Channels are split into ``groups`` equal groups and each group's correlation (mean over its
    channels of left(x) * right(x - d)) is kept separately (Guo et al. 2019, GwcNet): a few groups
    keep more of the matching evidence than one averaged number, at almost no cost.
    """
    if left_feat.shape != right_feat.shape:
        raise ValueError(f"left and right features differ in shape: {tuple(left_feat.shape)} vs {tuple(right_feat.shape)}")
    if left_feat.dim() != 4:
        raise ValueError(f"features must be (B, C, H, W), got {tuple(left_feat.shape)}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    b, c, h, w = left_feat.shape
    if c % groups:
        raise ValueError(f"{c} channels do not split into {groups} groups")
    # Zero padding gives the "zero where out of bounds" rule: right(x - d) is padded[..., x - d + S].
    padded = F.pad(right_feat, (max_shift, max_shift))
    slices = []
    for d in range(-max_shift, max_shift + 1):
        start = max_shift - d
        product = left_feat * padded[..., start : start + w]
        slices.append(product.view(b, groups, c // groups, h, w).mean(2))
    return torch.stack(slices, dim=2)


def correlation_volume(left_feat: Tensor, right_feat: Tensor, max_shift: int) -> Tensor:
    """``(B, C, H, W)`` x2 -> ``(B, 2 * max_shift + 1, H, W)``: mean over channels of left(x) * right(x - d).

    See the module docstring for the sign convention: a pair with ``right(x) = left(x + k)`` peaks at
    slice ``max_shift + k``.
    """
    return groupwise_correlation_volume(left_feat, right_feat, max_shift, groups=1)[:, 0]
