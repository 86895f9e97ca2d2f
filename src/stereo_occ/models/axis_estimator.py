"""The object's up axis from the images, by a small network trained before the occupancy network.

Mugs, bowls and bottles are solids of revolution (but for a mug's handle). An occupancy network
that works in a frame along the object's axis sees every object upright, whatever its rotation in
the rig, so what it learns about walls holds for every view: given the true axis, the quick
rig-stereo scored +0.085 development IoU (docs/training.md, "Session 19"). The occupancy network
cannot learn the axis itself in the quick budget (a head on its own features stayed 20-65 degrees
off, and the frames moved under it while it learned). So the axis comes from a network of its own,
trained first and then frozen (:mod:`stereo_occ.training.axis`):

- it sees **one image** and answers in **that camera's frame**, so every view of every training
  object is a sample (both images of a pair), and a camera rolled about its optical axis or mirrored
  gives new samples whose answer is known (the image turned about its centre, the axis turned about
  z; the image mirrored, x negated): a few thousand images are enough;
- the rig models bring each view's answer into the rig frame with the calibration and average them
  (:func:`rig_directions`): rig-stereo uses both views, rig-mono the left one, with the same estimator.

It is trained on the line first and its sign second (:func:`~stereo_occ.training.axis.axis_loss`):
the sign matters (a bowl's opening), but the cosine alone never found a mug's axis. On the development
set bowls are about 10 degrees off, bottles about 18 (a quarter of them upside down) and mugs' line
about 40 with the sign at random (docs/training.md, "Session 21").

With a **handle head** (``handle=True``, trained where ``data.handle_axis`` says which way the
training mugs' handles point) it gives a second direction from the same features: where a mug's
handle points, and for a bowl or a bottle, which have no side of their own, the direction towards
the camera. A frame built on both (:func:`~stereo_occ.models.rig_volume.axis_frame`) is a mug's
whole pose, which session 19's oracle showed mugs need (docs/training.md, "Session 24").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cameras import Cameras


class AxisEstimator(nn.Module):
    """``(B, 3, H, W)`` images in [0, 1] -> ``(B, K, 3)`` unit directions in each image's camera frame:
    the up axis, and with ``handle`` the handle's direction (``K`` = 1 or 2).

    Five stride-2 stages of two 3x3 convolutions (GroupNorm: no batch statistics, so training and
    evaluation compute the same thing), then the 2x2 map (at 64 px) flattened through two linear
    layers: where in the image the parts lie (a neck above or below a body) tells the axis and its
    sign. The handle's direction is a second linear layer on the same hidden features.
    """

    STAGES = 5

    def __init__(self, width: int = 32, image_size: int = 64, handle: bool = False) -> None:
        super().__init__()
        channels = [3, width, 2 * width, 4 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(self.STAGES):
            c_in, c_out = channels[i], channels[i + 1]
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        side = image_size
        for _ in range(self.STAGES):
            side = (side + 1) // 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels[-1] * side * side, 256), nn.ReLU(inplace=True), nn.Linear(256, 3)
        )
        self.handle_head = nn.Linear(256, 3) if handle else None
        self.width, self.image_size = width, image_size

    @property
    def finds_handle(self) -> bool:
        return self.handle_head is not None

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"the axis estimator takes {self.image_size} px images (got {tuple(images.shape[-2:])})")
        hidden = self.head[:-1](self.features(images))
        answers = [self.head[-1](hidden)]
        if self.handle_head is not None:
            answers.append(self.handle_head(hidden))
        return F.normalize(torch.stack(answers, 1).float(), dim=-1)


def rig_directions(estimator: AxisEstimator, images: list[Tensor], cameras: Cameras) -> Tensor:
    """Each view's answers brought into the rig frame (``R_v^T a_v``) and averaged: ``(B, K, 3)`` unit
    directions, the axis first (and the handle's direction second, for an estimator that finds it).

    ``images`` are the views in the rig's order (the left one alone for a mono model). Each later
    view's axis is turned to agree in sign with the first view's before the average: where the
    views disagree on which end is the top (a mug seen from the side), a plain average would cancel
    the line they agree on. A handle has no such ambiguity; its directions are averaged as they are.
    """
    total = None
    for view, image in enumerate(images):
        in_camera = estimator(image)
        with torch.autocast(image.device.type, enabled=False):
            rotation = cameras.world_to_cam[:, view, :3, :3].float()  # rig -> camera
            in_rig = in_camera.float() @ rotation  # (B, K, 3) row vectors: R^T a
            if total is None:
                total = in_rig
            else:
                agree = torch.where((in_rig[:, 0] * total[:, 0]).sum(-1, keepdim=True) < 0, -1.0, 1.0)
                in_rig = torch.cat([agree[:, None] * in_rig[:, :1], in_rig[:, 1:]], 1)
                total = total + in_rig
    return F.normalize(total, dim=-1)
