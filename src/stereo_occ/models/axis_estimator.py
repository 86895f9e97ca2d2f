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

It chooses among 1,000 directions on the sphere (a classifier on soft labels; the answer is the mean
of the bins near the most likely one). The regression of sessions 20 to 24 (a unit vector, trained on
the line first and its sign second, :func:`~stereo_occ.training.axis.axis_loss`) never fitted a mug's
axis, not even on its training images; the classifier puts a mug's line 13 degrees off on the
development set, bowls 4 and bottles 7, one view at a time (docs/training.md, "Session 25").

With a **handle head** (``handle=True``, trained where ``data.handle_axis`` says which way the
training mugs' handles point) it gives a second direction from the same features: where a mug's
handle points, and for a bowl or a bottle, which have no side of their own, the direction towards
the camera. A frame built on both (:func:`~stereo_occ.models.rig_volume.axis_frame`) is a mug's
whole pose, which session 19's oracle showed mugs need (docs/training.md, "Session 24").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import AXIS_COPIES
from .cameras import Cameras


DEFAULT_BINS = 1000
"""Directions the estimator chooses among: neighbours about 6 degrees apart (docs/training.md, "Session 25")."""

NEIGHBOURHOOD_DEGREES = 25.0
"""An answer is the probability-weighted mean of the bins this close to the most likely one."""


def sphere_bins(n: int) -> Tensor:
    """``(n, 3)`` unit directions spread evenly over the sphere (a Fibonacci lattice)."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    polar = torch.acos(1.0 - 2.0 * i / n)
    azimuth = math.pi * (1.0 + math.sqrt(5.0)) * i
    return torch.stack([torch.cos(azimuth) * torch.sin(polar), torch.sin(azimuth) * torch.sin(polar), torch.cos(polar)], -1).float()


class AxisEstimator(nn.Module):
    """``(B, 3, H, W)`` images in [0, 1] -> ``(B, K, 3)`` unit directions in each image's camera frame:
    the up axis, and with ``handle`` the handle's direction (``K`` = 1 or 2).

    Five stride-2 stages of two 3x3 convolutions, then the 2x2 map (at 64 px) flattened through two
    linear layers: where in the image the parts lie (a neck above or below a body) tells the axis and
    its sign. The handle's direction is a second linear layer on the same hidden features.

    **The convolutions are batch-normalised** (``norm="batch"``, the default since session 28;
    ``"group"`` before). With GroupNorm the trunk's output became the same for every image within a
    few steps, and a yes/no probe of which end of a mug the camera sees stayed near chance (54%);
    with BatchNorm it reached 66%, and 84% with more training mugs (docs/training.md, "Session 27").
    Batch statistics are a training-time thing: once trained, the estimator is used in eval mode, with
    statistics measured afresh on the final weights (:func:`~stereo_occ.training.axis.precise_batch_norm`),
    and a rig model keeps it so even while it trains itself
    (:meth:`~stereo_occ.models.rig_volume.RigVolumeEncoder.train`). State dicts say which norm they
    were trained with (BatchNorm's running statistics); GroupNorm files load as they were trained.

    **A classifier over directions** (``bins`` > 0, the default): each answer is a distribution over
    ``bins`` directions on the sphere (:func:`sphere_bins`), trained on soft labels around the true
    direction (:func:`~stereo_occ.training.axis.bin_loss`), and read as the mean of the bins near its
    mode. A distribution can say "top or bottom, not sure" with two peaks, where a regressed vector
    has to sit between them; the regression (``bins=0``, sessions 20 to 24) never fitted a mug's axis
    even on its training images, and the classifier does (docs/training.md, "Session 25").
    Estimator files carry their kind: loading a state dict whose last layers have another size
    rebuilds them to that size, so a model built with the default loads a regression estimator too.

    **The hidden layer is layer-normalised** (no parameters) before its ReLU, so about half its
    units are active for every image whatever a step does. Without it, a classifier trained without
    a handle head lost every hidden unit within 50 steps and stayed at the uniform distribution
    (docs/training.md, "Session 27"): early on the trunk's features barely differ between images, the
    lowest loss the head can reach is the targets' average, and switching its units off is the
    quickest way there; a dead ReLU passes no gradient back. State dicts say whether their head
    was normalised (the ``head_norm`` buffer); those written before it load as they were trained.
    """

    STAGES = 5

    NORMS = ("batch", "group")

    def __init__(self, width: int = 32, image_size: int = 64, handle: bool = False, bins: int = DEFAULT_BINS,
                 head_norm: bool = True, norm: str = "batch") -> None:
        super().__init__()
        if norm not in self.NORMS:
            raise ValueError(f"an axis estimator's convolutions are normalised by one of {self.NORMS} (got {norm!r})")
        channels = [3, width, 2 * width, 4 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(self.STAGES):
            c_in, c_out = channels[i], channels[i + 1]
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _norm_layer(norm, c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1), _norm_layer(norm, c_out), nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.norm = norm
        side = image_size
        for _ in range(self.STAGES):
            side = (side + 1) // 2
        outputs = self._outputs(bins)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels[-1] * side * side, 256), _hidden_activation(head_norm), nn.Linear(256, outputs)
        )
        self.handle_head = nn.Linear(256, outputs) if handle else None
        self.width, self.image_size, self.bins = width, image_size, bins
        self.register_buffer("directions", sphere_bins(bins) if bins > 0 else torch.zeros(0, 3), persistent=False)
        self.register_buffer("head_norm", torch.tensor(head_norm))  # saved with the weights: how they were trained
        self._copy_bin_cache: dict[tuple, Tensor] = {}  # forward(copies=...): the bins' correspondence, computed once

    @staticmethod
    def _outputs(bins: int) -> int:
        if bins < 0 or 0 < bins < 20:
            raise ValueError(f"an axis estimator chooses among 20 or more directions, or regresses one (bins=0); got {bins}")
        return bins if bins > 0 else 3

    def _set_bins(self, bins: int) -> None:
        """Rebuild the answer layers for ``bins`` directions (0: a regressed vector), where they were."""
        old = self.head[-1].weight
        outputs, device, trainable = self._outputs(bins), old.device, old.requires_grad  # a frozen estimator stays frozen
        self.head[-1] = nn.Linear(256, outputs, device=device).requires_grad_(trainable)
        if self.handle_head is not None:
            self.handle_head = nn.Linear(256, outputs, device=device).requires_grad_(trainable)
        self.bins = bins
        self.directions = (sphere_bins(bins) if bins > 0 else torch.zeros(0, 3)).to(device)
        self._copy_bin_cache.clear()

    def _set_norm(self, norm: str) -> None:
        """Rebuild the convolutions' normalisation layers as ``norm`` (their weights come with the state dict)."""
        for i, layer in enumerate(self.features):
            if isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
                channels = layer.num_features if isinstance(layer, nn.BatchNorm2d) else layer.num_channels
                trainable = layer.weight.requires_grad
                self.features[i] = _norm_layer(norm, channels).to(layer.weight.device).requires_grad_(trainable)
        self.features.train(self.training)
        self.norm = norm

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - torch's signature
        outputs = state_dict.get(prefix + "head.3.weight")
        if outputs is not None and outputs.shape[0] != self.head[-1].out_features:
            self._set_bins(0 if outputs.shape[0] == 3 else int(outputs.shape[0]))
        if outputs is not None:
            norm = "batch" if prefix + "features.1.running_mean" in state_dict else "group"  # GroupNorm: before session 28
            if norm != self.norm:
                self._set_norm(norm)
            head_norm = state_dict.setdefault(prefix + "head_norm", torch.tensor(False))  # absent: before session 27
            if bool(head_norm) != bool(self.head_norm):
                self.head[2] = _hidden_activation(bool(head_norm))
                self.head_norm.fill_(bool(head_norm))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def finds_handle(self) -> bool:
        return self.handle_head is not None

    def raw(self, images: Tensor) -> Tensor:
        """``(B, K, bins)`` logits over :attr:`directions` (``(B, K, 3)`` vectors for a regression)."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"the axis estimator takes {self.image_size} px images (got {tuple(images.shape[-2:])})")
        hidden = self.head[:-1](self.features(images))
        answers = [self.head[-1](hidden)]
        if self.handle_head is not None:
            answers.append(self.handle_head(hidden))
        return torch.stack(answers, 1).float()

    def forward(self, images: Tensor, copies: int = 1) -> Tensor:
        """Unit directions ``(B, K, 3)``; ``copies`` > 1 averages the answer over that many turned and
        mirrored copies of each image (:func:`image_copies`; a classifier only, a regression ignores it)."""
        if copies == 1 or self.bins == 0:
            return self.decode(self.raw(images))
        batch = images.shape[0]
        shown, transforms = image_copies(images, copies)
        probability = self.raw(shown).softmax(-1).unflatten(0, (copies, batch))  # (copies, B, K, bins), each in its copy's frame
        back = self._copy_bins(transforms)  # (copies, bins): bin i of the image's frame is bin back[c, i] of copy c
        index = back[:, None, None, :].expand(-1, batch, probability.shape[2], -1)
        averaged = probability.gather(-1, index).mean(0)
        return self.decode(averaged.clamp_min(1e-12).log())

    def _copy_bins(self, transforms: Tensor) -> Tensor:
        """For each copy's ``(3, 3)`` map T (image frame -> copy frame), the bin nearest to ``T d`` for every
        bin direction ``d``: where the copy's distribution holds what the image's would at ``d``."""
        key = tuple(transforms.flatten().tolist())
        cached = self._copy_bin_cache.get(key)
        if cached is None or cached.device != self.directions.device:
            moved = torch.einsum("cij,nj->cni", transforms.to(self.directions), self.directions)  # (copies, bins, 3)
            cached = (moved @ self.directions.T).argmax(-1)
            self._copy_bin_cache[key] = cached
        return cached

    def decode(self, raw: Tensor) -> Tensor:
        """:meth:`raw` answers -> unit directions: the probability-weighted mean of the bins within
        :data:`NEIGHBOURHOOD_DEGREES` of the mode (the mode alone would be quantised to the bins)."""
        if self.bins == 0:
            return F.normalize(raw, dim=-1)
        probability = raw.float().softmax(-1)
        mode = self.directions[probability.argmax(-1)]  # (B, K, 3)
        near = (mode @ self.directions.T) > math.cos(math.radians(NEIGHBOURHOOD_DEGREES))
        return F.normalize((probability * near) @ self.directions, dim=-1)


def image_copies(images: Tensor, copies: int) -> tuple[Tensor, Tensor]:
    """``(B, 3, H, W)`` square images -> ``(copies * B, 3, H, W)`` copies of them, copy-major, and each
    copy's ``(3, 3)`` map T from a direction in the image's camera frame to the copy's (``(copies, 3, 3)``).

    The copies are views the estimator was trained on (training rolls the camera by any angle and
    mirrors half the images, :func:`~stereo_occ.training.axis.roll_and_mirror`), and exact ones: a
    quarter turn of a square image moves whole pixels, no resampling. 2: the image and its mirror
    (x negated); 4: the four quarter turns; 8: both. A quarter turn (``torch.rot90`` over rows then
    columns) shows a camera-frame direction ``(x, y, z)`` as ``(y, -x, z)``; the principal point is
    the image's centre (the rig's).
    """
    if copies not in AXIS_COPIES:
        raise ValueError(f"the axis estimator averages over {', '.join(map(str, AXIS_COPIES))} copies of an image (got {copies})")
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"turned copies need square images (got {tuple(images.shape[-2:])})")
    turn = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    turns = 1 if copies == 2 else min(copies, 4)
    shown, transforms = [], []
    for mirrored in ((False, True) if copies in (2, 8) else (False,)):
        base, t_base = (images.flip(-1), mirror) if mirrored else (images, torch.eye(3))
        for k in range(turns):
            shown.append(torch.rot90(base, k, dims=(-2, -1)))
            transforms.append(torch.linalg.matrix_power(turn, k) @ t_base)
    return torch.cat(shown, 0), torch.stack(transforms)


def _norm_layer(norm: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.GroupNorm(8, channels)


def _hidden_activation(normalised: bool) -> nn.Module:
    """The head's hidden activation: a ReLU, after a layer norm without parameters where ``normalised``
    (:class:`AxisEstimator`: without it a classifier's hidden units all switched off early on)."""
    return nn.Sequential(nn.LayerNorm(256, elementwise_affine=False) if normalised else nn.Identity(), nn.ReLU(inplace=True))


def rig_directions(estimator: AxisEstimator, images: list[Tensor], cameras: Cameras, copies: int = 1) -> Tensor:
    """Each view's answers brought into the rig frame (``R_v^T a_v``) and averaged: ``(B, K, 3)`` unit
    directions, the axis first (and the handle's direction second, for an estimator that finds it).
    ``copies``: each view's answer averaged over that many turned and mirrored copies of its image
    (:func:`image_copies`; 8 put a mug upside down in 12% of the quick test split's views instead of 22%).

    ``images`` are the views in the rig's order (the left one alone for a mono model). Each later
    view's axis is turned to agree in sign with the first view's before the average: where the
    views disagree on which end is the top (a mug seen from the side), a plain average would cancel
    the line they agree on. A handle has no such ambiguity; its directions are averaged as they are.
    """
    total = None
    for view, image in enumerate(images):
        in_camera = estimator(image) if copies == 1 else estimator(image, copies)
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
