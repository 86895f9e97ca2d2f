"""The stereo encoder: shared dilated ResNet features, a cost volume, 3D then 2D convolutions.

Pipeline for a pair of ``(B, 3, H, W)`` images (sizes for 128 x 128 and the default rig):

1. **Features** (weights shared by both images, one batched pass): ResNet-18 stem, ``layer1`` and a
   ``layer2`` whose stride is replaced by dilation, so features stay at 1/4 resolution (32 x 32)
   with a ~100 px receptive field; a 1x1 convolution projects 128 -> ``feature_dim`` channels.
2. **Cost volume**: group-wise correlation (``cost_volume.py``) over shifts ``d`` in ``[-S, S]`` ->
   ``(B, groups, 2S + 1, 32, 32)``. ``S`` comes from the rig geometry (:func:`max_disparity_pixels`;
   docs/models.md has the derivation); the toed-in rig needs both signs.
3. **3D convolutions** over (shift, height, width) filter the matching evidence; the vertical kernel
   also absorbs the toed-in rig's vertical disparity (at most ~1.5 feature pixels).
4. **2D head**: the shift axis is folded into channels (so "which depth" stays explicit), the left
   features are concatenated (appearance and silhouette: stereo sees everything mono sees), and
   three strided residual blocks plus a global pool and a linear map give the code.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ..config import RigConfig
from ..data.rig import StereoRig
from .cost_volume import groupwise_correlation_volume
from .resnet import BasicBlock, ImageNetNormalize, ResNet18, load_torchvision_resnet18

BOX_HALF_EXTENT = 0.55
"""Half side of the padded box [-0.55, 0.55]^3 where occupancy points live (object units)."""

FEATURE_STRIDE = 4
"""Image pixels per feature pixel (stem stride 4; layer2 dilated instead of strided)."""


def max_disparity_pixels(rig_cfg: RigConfig, half_extent: float = BOX_HALF_EXTENT, samples: int = 33) -> float:
    """Largest ``|x_left - x_right|`` (pixels at ``rig_cfg.image_size``) of a point in the padded box.

    Disparity is smooth in the point, so a dense grid over the box (boundary included) finds its
    extremes to well under a pixel. For the default rig this is 16.3 px (range -11.4 .. +16.3).
    """
    rig = StereoRig.from_config(rig_cfg)
    axis = np.linspace(-half_extent, half_extent, samples)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    left, _ = rig.project(grid, 0)
    right, _ = rig.project(grid, 1)
    return float(np.abs(left[:, 0] - right[:, 0]).max())


def feature_shifts(max_disparity_px: float, stride: int = FEATURE_STRIDE) -> int:
    """Cost-volume half-range ``S`` in feature pixels that covers ``max_disparity_px`` image pixels."""
    return max(1, math.ceil(max_disparity_px / stride - 1e-6))


def conv3d_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True))


class StereoFeatures(nn.Module):
    """Shared per-image features at 1/4 resolution: dilated ResNet-18 (stem..layer2) + projection."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.normalize = ImageNetNormalize()
        self.backbone = ResNet18(num_classes=None, stages=2, replace_stride_with_dilation=(True, False, False))
        self.project = nn.Sequential(
            nn.Conv2d(self.backbone.out_channels, feature_dim, 1, bias=False), nn.BatchNorm2d(feature_dim)
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.project(self.backbone.forward_features(self.normalize(images)))


class StereoEncoder(nn.Module):
    """``left, right (B, 3, H, W)`` in [0, 1] -> code ``(B, code_dim)``."""

    def __init__(
        self,
        code_dim: int = 512,
        feature_dim: int = 32,
        max_shift: int = 5,
        groups: int = 8,
        volume_channels: int = 16,
    ) -> None:
        super().__init__()
        if feature_dim % groups:
            raise ValueError(f"feature_dim {feature_dim} must be a multiple of correlation_groups {groups}")
        self.max_shift = max_shift
        self.groups = groups
        self.features = StereoFeatures(feature_dim)
        self.volume = nn.Sequential(conv3d_bn_relu(groups, volume_channels), conv3d_bn_relu(volume_channels, volume_channels))
        head_in = volume_channels * (2 * max_shift + 1) + feature_dim
        self.head = nn.Sequential(
            BasicBlock(head_in, 128, stride=2),
            BasicBlock(128, 256, stride=2),
            BasicBlock(256, 512, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(512, code_dim)

    def forward(self, left: Tensor, right: Tensor, cameras: object = None) -> Tensor:
        """The code of a pair; like the study's model it assumes the training rig and ignores ``cameras``."""
        b = left.shape[0]
        feats = self.features(torch.cat([left, right], 0))  # one pass through the shared weights
        left_feat, right_feat = feats[:b], feats[b:]
        volume = self.volume(groupwise_correlation_volume(left_feat, right_feat, self.max_shift, self.groups))
        # (B, C, D, H, W) -> (B, C*D, H, W): every shift keeps its own channels.
        folded = volume.flatten(1, 2)
        return self.fc(self.head(torch.cat([folded, left_feat], 1)))

    def load_resnet18_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """Start the shared feature extractor from ImageNet weights (stem, layer1, layer2)."""
        load_torchvision_resnet18(self.features.backbone, state_dict)


def stereo_shifts(max_disparity: int, rig_cfg: RigConfig) -> int:
    """``S`` for a model config: ``max_disparity`` pixels if set, else derived from the rig."""
    pixels = float(max_disparity) if max_disparity > 0 else max_disparity_pixels(rig_cfg)
    return feature_shifts(pixels)
