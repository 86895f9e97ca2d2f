"""The calibrated stereo rig inside the network: one batched camera record, projection, sampling.

Every camera-aware model asks the same three questions of the rig, so they are answered once here:
where does a rig-frame point land in each image (:meth:`Cameras.project`), what is the image
feature there (:meth:`Cameras.sample`), and how far in front of the camera is it (the depth that
:meth:`Cameras.project` returns). OpenCV convention only, exactly as ``data/rig.py`` stores it
(docs/geometry.md): ``K`` maps camera coordinates to pixels with pixel centres at integer
coordinates, ``world_to_cam`` maps rig-frame points to camera coordinates (``+z`` forward).

Feature maps of any resolution that cover the whole image are sampled with the same pixel
coordinates: ``grid_sample`` with ``align_corners=False`` treats a map of ``w`` columns as ``w`` equal
cells across the image, so pixel ``u`` of a ``W``-wide image is at ``(u + 0.5) / W * 2 - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import UserError

if TYPE_CHECKING:
    from ..data.rig import StereoRig

LEFT, RIGHT = 0, 1


@dataclass(frozen=True)
class Cameras:
    """The cameras of a batch of stereo pairs: ``K (B, V, 3, 3)``, ``world_to_cam (B, V, 4, 4)``.

    ``V`` is 2 (left, right) for stereo pairs; ``image_size`` is ``(width, height)`` in pixels.
    """

    K: Tensor
    world_to_cam: Tensor
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.K.dim() != 4 or self.K.shape[-2:] != (3, 3):
            raise UserError(f"cameras: K must be (B, V, 3, 3), got {tuple(self.K.shape)}")
        if self.world_to_cam.shape != (*self.K.shape[:2], 4, 4):
            raise UserError(
                f"cameras: world_to_cam must be (B, V, 4, 4) like K {tuple(self.K.shape)}, "
                f"got {tuple(self.world_to_cam.shape)}"
            )

    @classmethod
    def from_arrays(cls, K, world_to_cam, image_size: int | tuple[int, int]) -> "Cameras":
        """From numpy or torch arrays of one pair ``(V, 3, 3)`` / ``(V, 4, 4)`` or a batch of pairs."""
        K = torch.as_tensor(np.asarray(K) if not isinstance(K, Tensor) else K, dtype=torch.float32)
        w2c = world_to_cam
        w2c = torch.as_tensor(np.asarray(w2c) if not isinstance(w2c, Tensor) else w2c, dtype=torch.float32)
        if K.dim() == 3:
            K, w2c = K[None], w2c[None]
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        return cls(K, w2c, (int(size[0]), int(size[1])))

    @classmethod
    def from_rig(cls, rig: StereoRig) -> "Cameras":
        """The cameras of a :class:`~stereo_occ.data.rig.StereoRig` (one pair; ``expand`` for a batch)."""
        return cls.from_arrays(np.stack([rig.K, rig.K]), rig.world_to_cam, rig.image_size)

    @classmethod
    def from_batch(cls, batch: dict, image_size: int | tuple[int, int] | None = None) -> "Cameras":
        """From a (collated) dataset item: its ``K``, ``world_to_cam`` and the images' size."""
        if image_size is None:
            height, width = batch["left"].shape[-2:]
            image_size = (int(width), int(height))
        return cls.from_arrays(batch["K"], batch["world_to_cam"], image_size)

    @property
    def batch_size(self) -> int:
        return int(self.K.shape[0])

    def to(self, device: torch.device | str) -> "Cameras":
        return Cameras(self.K.to(device), self.world_to_cam.to(device), self.image_size)

    def expand(self, batch_size: int) -> "Cameras":
        """The same cameras for ``batch_size`` pairs (a calibrated rig used for every input)."""
        if self.batch_size == batch_size:
            return self
        if self.batch_size != 1:
            raise UserError(f"cameras for {self.batch_size} pairs cannot serve a batch of {batch_size}")
        shape = (batch_size, *self.K.shape[1:])
        return Cameras(self.K.expand(shape), self.world_to_cam.expand(batch_size, -1, -1, -1), self.image_size)

    def project(self, points: Tensor, view: int) -> tuple[Tensor, Tensor]:
        """Pixels ``(B, N, 2)`` as (column, row) and depth ``(B, N)`` of rig-frame points ``(B, N, 3)``.

        Always in float32, also under bf16 autocast: bf16 would put a pixel a quarter of a pixel off
        at 64 px, as much as a bowl's wall.
        """
        with torch.autocast(points.device.type, enabled=False):
            w2c = self.world_to_cam[:, view].float()
            cam = points.float() @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
            depth = cam[..., 2]
            uvw = cam @ self.K[:, view].float().transpose(1, 2)
            return uvw[..., :2] / uvw[..., 2:3].clamp(min=1e-6), depth

    def grid(self, pixels: Tensor) -> Tensor:
        """Pixel coordinates ``(..., 2)`` -> ``grid_sample`` coordinates in [-1, 1] (align_corners=False)."""
        size = pixels.new_tensor(self.image_size)
        return (pixels + 0.5) / size * 2.0 - 1.0

    def sample(self, features: Tensor, points: Tensor, view: int) -> Tensor:
        """Bilinear feature ``(B, N, C)`` of map ``(B, C, h, w)`` (covering the image) under each point.

        Points that project outside the image get zeros.
        """
        pixels, _ = self.project(points, view)
        grid = self.grid(pixels)[:, :, None, :]  # (B, N, 1, 2)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return sampled[..., 0].transpose(1, 2)

    def centers(self) -> Tensor:
        """Camera positions ``(B, V, 3)`` in the rig frame."""
        rot, t = self.world_to_cam[..., :3, :3], self.world_to_cam[..., :3, 3]
        return -(rot.transpose(-1, -2) @ t[..., None])[..., 0]
