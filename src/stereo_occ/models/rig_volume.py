"""Camera-aware models: pixel-aligned features of both views and a feature volume in the rig frame.

The study's models squeeze a stereo pair into one global code, and the decoder has to recover from
it where, at a random rotation, every thin wall of the object is. These models keep the geometry
instead. The rig is calibrated (``K`` and ``world_to_cam`` come with every view, and with the
checkpoint), so a query point can be projected into both images:

1. **Image features** (:class:`ImageFeatures`, shared by both views): three small convolutional
   stages at full, 1/2 and 1/4 resolution, merged into one map at 1/2 resolution (32 x 32 for 64 px
   images; with ``space_to_depth=k`` the first stage works on k x k pixel blocks, so everything is k
   times coarser and a 128 px pair folded 2x2 costs what a 64 px one does). GroupNorm, not
   BatchNorm: the statistics do not depend on the batch, so validation does not jump with them.
2. **Rig-frame volume** (:class:`RigVolumeEncoder`): the centres of a ``G^3`` grid over the sphere
   any object lies in are projected into both views and the two features compared there (mean,
   squared difference, product: where they agree, a surface can be); a small 3D U-Net turns this
   matching evidence into a volume that also completes the side neither camera sees. The volume
   reads a narrower (``volume_channels``) projection of the feature maps: its 16^3 = 4,096 voxel
   centres are 2-4x a batch's query points, and at full width their sampling was a fifth of the
   training step.
3. **Decoder** (:class:`PointDecoder`): per query point, the volume feature (trilinear), the same
   comparison of its two pixel features (bilinear, at the projection: the fine detail the coarse
   volume cannot hold), and a positional encoding, through residual blocks without normalisation.

With ``align_axis`` the volume is built in a frame whose third axis is the object's axis
(:func:`axis_frame`), estimated from the images by a separate network trained first and frozen
(:mod:`.axis_estimator`: the up axis of a mug, a bowl or a bottle, all solids of revolution but for a
handle); the decoder reads the volume and encodes positions in the same frame. The 3D convolutions
then see every object upright, whatever its rotation in the rig, so what they learn about walls
(parallel to the axis for a mug, around it for a bowl) holds for every view. With ``align_handle``
the frame also turns about the axis to where the estimator finds a mug's handle (the cameras' side
for a bowl or a bottle), so a mug is laid out in its own pose.

The mono twin (``views=1``) is the same network on the left view only: the volume and the decoder get
the left feature and the point's depth in front of the left camera instead of the comparison, so the
two differ exactly in what the second view adds. Encoding returns a :class:`RigConditioning`; decoding
is cheap per point and batched, so mesh extraction queries millions of points against one encoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig, RigConfig
from ..data.rig import OBJECT_RADIUS
from ..errors import UserError
from .axis_estimator import AxisEstimator, rig_directions
from .cameras import LEFT, RIGHT, Cameras
from .network import OccupancyNetwork
from .pair_cache import PairCache
from .plane_sweep import SWEEP_CHANNELS, SWEEP_WINDOW, plane_sweep, sweep_features



def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def conv_gn_relu(in_ch: int, out_ch: int, dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=False),
        group_norm(out_ch),
        nn.ReLU(inplace=True),
    ]


class ImageFeatures(nn.Module):
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, out_channels, H/2k, W/2k)`` features with a wide receptive field.

    ``k`` is ``space_to_depth`` (1: none): the first stage sees k x k pixel blocks folded into
    channels. Each later stage halves the resolution with a 2x2 average pool before its convolutions
    (not with a strided convolution, whose output cell ``j`` is centred on input pixel ``2j``): cell
    ``j`` of the output then covers input pixels ``2kj`` to ``2kj + 2k - 1`` exactly, which is where
    :class:`Cameras` samples it. Half a pixel matters when walls are one or two pixels wide.
    """

    def __init__(self, channels: int = 32, fine_channels: int = 0, space_to_depth: int = 1) -> None:
        super().__init__()
        c = channels
        # k x k pixel blocks folded into channels: a 128 px image costs what a 64 px one does and keeps
        # its detail (walls 2-4 pixels wide instead of 1-2) in the channels.
        self.space_to_depth = nn.PixelUnshuffle(space_to_depth) if space_to_depth > 1 else nn.Identity()
        self.space_to_depth_factor = space_to_depth
        self.stage1 = nn.Sequential(*conv_gn_relu(3 * space_to_depth**2, c), *conv_gn_relu(c, c))
        self.stage2 = nn.Sequential(nn.AvgPool2d(2, ceil_mode=True), *conv_gn_relu(c, 2 * c), *conv_gn_relu(2 * c, 2 * c))
        self.stage3 = nn.Sequential(
            nn.AvgPool2d(2, ceil_mode=True), *conv_gn_relu(2 * c, 2 * c), *conv_gn_relu(2 * c, 2 * c, dilation=2)
        )
        self.merge = nn.Conv2d(c + 4 * c, 2 * c, 1)
        self.out_channels = 2 * c
        self.fine = nn.Conv2d(c, fine_channels, 1) if fine_channels > 0 else None
        self.fine_channels = fine_channels
        # Channels-last (NHWC) is oneDNN's native layout on the CPU: the rig-stereo training step is
        # 5-10% faster with it (bench/bench_models.py --channels-last times both), and every
        # later map keeps it. An attribute, not a config field: results differ only by float rounding.
        self.memory_format = torch.channels_last

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        k = self.space_to_depth_factor
        if images.shape[-1] % k or images.shape[-2] % k:
            raise UserError(f"this model folds {k}x{k} pixel blocks: image size {tuple(images.shape[-2:])} is not a multiple")
        images = ((images - 0.5) / 0.25).contiguous(memory_format=self.memory_format)
        full = self.stage1(self.space_to_depth(images))
        pooled = self.stage2[0](full)  # stage 2's 2x2 pooling, shared with the merge (pooling again cost 6% of a step)
        half = self.stage2[1:](pooled)
        quarter = self.stage3(half)
        size = half.shape[-2:]
        merged = torch.cat(
            [
                pooled,
                half,
                F.interpolate(quarter, size=size, mode="bilinear", align_corners=False),
            ],
            1,
        )
        return self.merge(merged), (self.fine(full) if self.fine is not None else None)


class VolumeBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_ch, out_ch, 3, stride, 1, bias=False),
            group_norm(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_ch, out_ch, 3, 1, 1, bias=False),
            group_norm(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class VolumeUNet(nn.Module):
    """A three-level 3D U-Net: context from 1/4 resolution, detail from the skip connections."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.down0 = VolumeBlock(c, c)
        self.down1 = VolumeBlock(c, 2 * c, stride=2)
        self.down2 = VolumeBlock(2 * c, 2 * c, stride=2)
        self.up1 = nn.Conv3d(4 * c, 2 * c, 3, 1, 1)
        self.up0 = nn.Conv3d(3 * c, c, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.down0(x)
        b = self.down1(a)
        c = self.down2(b)
        up = lambda t, like: F.interpolate(t, size=like.shape[-3:], mode="trilinear", align_corners=False)  # noqa: E731
        b = F.relu(self.up1(torch.cat([b, up(c, b)], 1)))
        return F.relu(self.up0(torch.cat([a, up(b, a)], 1)))


def positional_encoding(points: Tensor, frequencies: int) -> Tensor:
    """``(..., 3)`` -> ``(..., 3 + 6 * frequencies)``: the point and sines/cosines of it at octaves."""
    scales = (2.0 ** torch.arange(frequencies, device=points.device, dtype=points.dtype)) * math.pi
    angles = (points[..., None] * scales).flatten(-2)
    return torch.cat([points, torch.sin(angles), torch.cos(angles)], -1)


@dataclass
class RigConditioning:
    """What conditions the decoder: both views' feature maps, the rig-frame volume, the cameras."""

    left: Tensor  # (B, C, h, w)
    right: Tensor | None  # (B, C, h, w); None for the mono twin
    volume: Tensor  # (B, C3, G, G, G), axes (z, y, x) over [-extent, extent]^3
    cameras: Cameras
    left_fine: Tensor | None = None  # (B, F, H/k, W/k) first-stage features; None without them
    right_fine: Tensor | None = None
    # With align_axis: the estimated unit axis (B, 3) and the frame (B, 3, 3) whose rows are the
    # volume's x, y, z axes in the rig frame (volume coordinates q = frame @ p); None: the rig's axes.
    axis: Tensor | None = None
    frame: Tensor | None = None
    with_depth: bool | None = None  # the point features carry the point's depth (None: the mono twin only)
    # With model.sweep_planes: each view's classical plane sweep of the raw pair (B, 3, H, W), plane_sweep.py
    left_sweep: Tensor | None = None
    right_sweep: Tensor | None = None

    def to_volume_frame(self, points: Tensor) -> Tensor:
        """``(B, N, 3)`` rig-frame points in the volume's frame (the same points without a frame)."""
        if self.frame is None:
            return points
        with torch.autocast(points.device.type, enabled=False):  # positions in fp32 under bf16 autocast
            return points.float() @ self.frame.transpose(1, 2)


def sample_volume(volume: Tensor, points: Tensor, extent: float) -> Tensor:
    """``(B, C, G, G, G)`` over ``[-extent, extent]^3`` at ``(B, N, 3)`` rig-frame points -> ``(B, N, C)``, trilinear."""
    grid = (points / extent)[:, :, None, None, :]  # (B, N, 1, 1, 3) as (x, y, z)
    sampled = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return sampled[:, :, :, 0, 0].transpose(1, 2)


def axis_frame(axis: Tensor, towards: Tensor | None = None) -> Tensor:
    """``(B, 3)`` unit axes -> ``(B, 3, 3)`` rotations whose third row is the axis.

    The first row is ``towards`` (``(B, 3)``: the estimated direction of a mug's handle, model.align_handle)
    made orthogonal to the axis; without it, or where it lies within about 10 degrees of the axis, the
    rig's x axis made orthogonal to it (its y axis where the two are nearly parallel), a turn about the
    axis that is arbitrary and that the network is trained on whatever it is.
    """
    reference = torch.zeros_like(axis)
    near_x = axis[:, 0].abs() > 0.9
    reference[:, 0] = (~near_x).to(axis.dtype)
    reference[:, 1] = near_x.to(axis.dtype)
    if towards is not None:
        across = towards - (towards * axis).sum(-1, keepdim=True) * axis
        reference = torch.where(across.norm(dim=-1, keepdim=True) > 0.17, towards, reference)
    x = F.normalize(reference - (reference * axis).sum(-1, keepdim=True) * axis, dim=-1)
    y = torch.cross(axis, x, dim=-1)
    return torch.stack([x, y, axis], 1)


class RigVolumeEncoder(nn.Module):
    """``left, right, cameras`` -> :class:`RigConditioning` (``views=1``: the left view only)."""

    uses_cameras = True  # reconstruction projects with a user's calibration instead of the training rig
    # bf16 autocast (3D convolutions excepted): the same validation IoU as fp32 over 300 quick steps,
    # 1.3-1.4x faster (docs/training.md, "Precision")
    trains_well_in_bf16 = True

    def __init__(
        self,
        views: int = 2,
        feature_channels: int = 32,
        volume_channels: int = 16,
        volume_resolution: int = 16,
        extent: float = OBJECT_RADIUS,
        fine_channels: int = 0,
        space_to_depth: int = 1,
        align_axis: bool = False,
        image_size: int = 64,
        stereo_depth: bool = False,
        align_handle: bool = False,
        sweep_planes: int = 0,
        sweep_refine: bool = False,
    ) -> None:
        super().__init__()
        if views not in (1, 2):
            raise UserError(f"a rig model sees 1 or 2 views (got {views})")
        if sweep_planes and views != 2:
            raise UserError("model.sweep_planes matches the two views: it is for rig-stereo, not the mono twin")
        # planes of the classical sweep of the raw pair read per point (0: none; model.sweep_planes)
        self.sweep_planes = sweep_planes
        self.sweep_refine = sweep_refine  # the swept surface placed between planes (model.sweep_refine)
        self.pair_cache = PairCache()
        self.views = views
        self.extent = extent
        self.features = ImageFeatures(feature_channels, fine_channels, space_to_depth)
        self.feature_dim = self.features.out_channels
        # the stereo features with the depth the mono twin's carry (model.stereo_depth)
        self.with_depth = views == 1 or stereo_depth
        self.point_dim = point_feature_dim(self.feature_dim, views, self.with_depth, sweep=sweep_planes > 0)
        self.fine_dim = point_feature_dim(fine_channels, views) if fine_channels > 0 else 0
        # The volume compares the two views at G^3 voxel centres, 2-4x as many as a batch's query
        # points: it reads a narrower projection of the feature maps (a fifth of the step otherwise).
        self.volume_features = nn.Conv2d(self.feature_dim, volume_channels, 1)
        self.lift = nn.Conv3d(point_feature_dim(volume_channels, views, self.with_depth, sweep=sweep_planes > 0),
                              volume_channels, 1)
        self.unet = VolumeUNet(volume_channels)
        self.volume_channels = volume_channels
        axis = torch.linspace(-extent, extent, volume_resolution)
        z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
        # Voxel centres in (z, y, x) memory order, as (x, y, z) points: the order grid_sample reads.
        self.register_buffer("voxel_centers", torch.stack([x, y, z], -1).reshape(-1, 3), persistent=False)
        self.resolution = volume_resolution
        # Frozen: trained before this network (training/axis.py) and loaded when its training starts.
        self.axis_estimator = (AxisEstimator(image_size=image_size, handle=align_handle).requires_grad_(False)
                               if align_axis else None)
        # copies of each image the estimator averages over when this network evaluates (one in training;
        # eval.axis_copies sets it: OccupancyNetwork.set_axis_copies)
        self.axis_copies = 1

    def train(self, mode: bool = True) -> "RigVolumeEncoder":
        """Train or evaluate this network; the frozen axis estimator always evaluates, so its
        BatchNorm reads the statistics it was trained with rather than the batch's (and never moves them)."""
        super().train(mode)
        if self.axis_estimator is not None:
            self.axis_estimator.eval()
        return self

    def forward(self, left: Tensor, right: Tensor, cameras: Cameras | None = None) -> RigConditioning:
        if cameras is None:
            raise UserError("this model uses the cameras: pass the stereo rig (K and world_to_cam)")
        b = left.shape[0]
        cameras = cameras.to(left.device).expand(b)
        if self.views == 2:
            maps, fine = self.features(torch.cat([left, right], 0))
            left_map, right_map = maps[:b], maps[b:]
            left_fine, right_fine = (fine[:b], fine[b:]) if fine is not None else (None, None)
        else:
            (left_map, left_fine), right_map, right_fine = self.features(left), None, None
        centers = self.voxel_centers[None].expand(b, -1, -1)
        axis = frame = None
        if self.axis_estimator is not None:
            # In fp32 under bf16 autocast, so that training and evaluation lay out the same frame.
            with torch.no_grad(), torch.autocast(left.device.type, enabled=False):
                directions = rig_directions(self.axis_estimator, [left.float()] if self.views == 1 else [left.float(), right.float()],
                                            cameras, copies=1 if self.training else self.axis_copies)
                axis = directions[:, 0]
                frame = axis_frame(axis, directions[:, 1] if self.axis_estimator.finds_handle else None)
                centers = centers @ frame  # the grid laid out in the axis frame: p = frame^T q
        sweeps = self.swept_surfaces(left, right, cameras) if self.sweep_planes else (None, None)
        narrow = self.volume_features(maps if self.views == 2 else left_map)
        per_voxel = point_features(centers, narrow[:b], narrow[b:] if right_map is not None else None, cameras,
                                   depth=self.with_depth, sweeps=sweeps)
        g = self.resolution
        volume = per_voxel.transpose(1, 2).reshape(b, -1, g, g, g)
        # The 3D convolutions stay in fp32 under bf16 autocast: oneDNN's bf16 Conv3d weight gradient
        # is not bit-reproducible on the CPU for some volume sizes (8^3 with 8 channels: two runs of
        # the same steps differ), which would break exact resume. They are a small share of the step.
        with torch.autocast(volume.device.type, enabled=False):
            volume = self.unet(self.lift(volume.float()))
        return RigConditioning(left_map, right_map, volume, cameras, left_fine, right_fine, axis, frame,
                               with_depth=self.with_depth, left_sweep=sweeps[0], right_sweep=sweeps[1])

    def swept_surfaces(self, left: Tensor, right: Tensor, cameras: Cameras) -> tuple[Tensor, Tensor]:
        """Both views' plane sweeps (:func:`.plane_sweep.plane_sweep`), each pair's computed once and
        then looked up (:class:`.pair_cache.PairCache`): it has no weights, and training shows every
        pair about 14 times (quick config)."""
        size = cameras.image_size

        def sweep(left: Tensor, right: Tensor, K: Tensor, world_to_cam: Tensor) -> tuple[Tensor, Tensor]:
            return plane_sweep(left, right, Cameras(K, world_to_cam, size), self.sweep_planes, self.extent,
                               window=SWEEP_WINDOW, refine=self.sweep_refine)

        salt = (f"plane sweep: {self.sweep_planes} planes over +-{self.extent}, {SWEEP_WINDOW}x{SWEEP_WINDOW} SSD, "
                f"refined {self.sweep_refine}, image {size}")
        left_sweep, right_sweep = self.pair_cache(sweep, (left, right, cameras.K, cameras.world_to_cam), salt=salt)
        return left_sweep, right_sweep


def point_feature_dim(feature_dim: int, views: int, depth: bool | None = None, sweep: bool = False) -> int:
    """Channels of :func:`point_features` (``depth=None``: the mono twin's depth, not the stereo's)."""
    depth = views == 1 if depth is None else depth
    return (3 * feature_dim if views == 2 else feature_dim) + int(depth) + (2 * SWEEP_CHANNELS if sweep else 0)


def point_features(points: Tensor, left_map: Tensor, right_map: Tensor | None, cameras: Cameras,
                   depth: bool | None = None, sweeps: tuple[Tensor | None, Tensor | None] = (None, None)) -> Tensor:
    """Per point ``(B, N, C')``: the two views' features compared, or the left feature, and a depth.

    Stereo: mean, squared difference and product of the bilinear features at the point's two
    projections (a surface point shows the same thing in both views). Mono: the left feature. Then,
    for mono always and for stereo with ``depth=True``, the point's depth in front of the left camera
    relative to the object centre's (``depth=None``: mono only). With ``sweeps`` (both views' plane
    sweeps), where the point lies against each view's swept surface (:func:`.plane_sweep.sweep_features`).
    """
    a = cameras.sample(left_map, points, LEFT)
    if right_map is None:
        features = [a]
    else:
        b = cameras.sample(right_map, points, RIGHT)
        features = [0.5 * (a + b), (a - b) ** 2, a * b]
    if depth is None:
        depth = right_map is None
    if depth:
        _, z = cameras.project(points, LEFT)
        centre = cameras.world_to_cam[:, LEFT, 2, 3, None].float()  # depth of the rig origin (object centre)
        features.append((z - centre)[..., None])
    if sweeps[0] is not None:
        features.append(sweep_features(points, sweeps[0], sweeps[1], cameras).to(features[0].dtype))
    return torch.cat(features, -1)


class ResidualBlock(nn.Module):
    """``x + fc(relu(fc(relu(x))))``; the branch starts at zero, so the network deepens smoothly."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc_0 = nn.Linear(width, width)
        self.fc_1 = nn.Linear(width, width)
        nn.init.zeros_(self.fc_1.weight)
        nn.init.zeros_(self.fc_1.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc_1(F.relu(self.fc_0(F.relu(x))))


class PointDecoder(nn.Module):
    """``(B, N, 3)`` rig-frame points and a :class:`RigConditioning` -> ``(B, N)`` logits.

    With ``rig_positions`` (models along the object's axis) the point is encoded in the rig frame too:
    the axis frame turns with the object, so on its own it no longer tells the decoder where the point
    is relative to the cameras (in front of or behind what they see).

    With ``distance_head`` a second linear output reads the same last hidden layer: the point's signed
    distance to the surface. Trained beside the occupancy, it asks the hidden layer for a quantity that
    varies smoothly across a thin wall (and tells the cavity's centre from a point next to the wall),
    where the occupancy is a spike narrower than a volume cell.
    """

    def __init__(self, point_dim: int, volume_channels: int, extent: float, hidden: int = 128, blocks: int = 4,
                 frequencies: int = 6, fine_dim: int = 0, distance_head: bool = False, rig_positions: bool = False) -> None:
        super().__init__()
        self.extent = extent
        self.frequencies = frequencies
        self.rig_positions = rig_positions
        position_dim = (3 + 6 * frequencies) * (2 if rig_positions else 1)
        self.fc_in = nn.Linear(position_dim + point_dim + volume_channels + fine_dim, hidden)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden) for _ in range(blocks)))
        self.fc_out = nn.Linear(hidden, 1)
        self.fc_distance = nn.Linear(hidden, 1) if distance_head else None

    @property
    def predicts_distance(self) -> bool:
        return self.fc_distance is not None

    def forward(self, points: Tensor, cond: RigConditioning, with_distance: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        b = points.shape[0]
        if cond.volume.shape[0] != b:
            raise ValueError(f"{b} point sets for {cond.volume.shape[0]} encodings")
        aligned = cond.to_volume_frame(points)
        features = [
            positional_encoding(aligned, self.frequencies),
            point_features(points, cond.left, cond.right, cond.cameras, depth=cond.with_depth,
                           sweeps=(cond.left_sweep, cond.right_sweep)),
            sample_volume(cond.volume, aligned, self.extent),
        ]
        if self.rig_positions:  # where the point is relative to the cameras too, not only to the object's axis
            features.append(positional_encoding(points, self.frequencies))
        if cond.left_fine is not None:
            features.append(point_features(points, cond.left_fine, cond.right_fine, cond.cameras))
        h = F.relu(self.blocks(self.fc_in(torch.cat(features, -1))))
        logits = self.fc_out(h).squeeze(-1)
        if not with_distance:
            return logits
        return logits, self.fc_distance(h).squeeze(-1)  # OccupancyNetwork.decode checks predicts_distance


def _build(cfg: ModelConfig, views: int, rig_cfg: RigConfig) -> OccupancyNetwork:
    k = cfg.space_to_depth
    if k > 1 and rig_cfg.image_size % (4 * k):
        # the folded map is pooled twice more: cells of unequal size would shift features off their pixels
        raise UserError(
            f"model.space_to_depth={k} needs images whose size is a multiple of {4 * k} "
            f"(the rig's is {rig_cfg.image_size} px)"
        )
    encoder = RigVolumeEncoder(
        views=views,
        feature_channels=cfg.image_channels,
        volume_channels=cfg.volume_channels,
        volume_resolution=cfg.volume_resolution,
        fine_channels=cfg.fine_channels,
        space_to_depth=cfg.space_to_depth,
        extent=rig_cfg.object_radius,  # the volume's cells only where an object can be
        align_axis=cfg.align_axis,
        image_size=rig_cfg.image_size,
        stereo_depth=cfg.stereo_depth,
        align_handle=cfg.align_handle,
        sweep_planes=cfg.sweep_planes,
        sweep_refine=cfg.sweep_refine,
    )
    if cfg.rig_positions and not cfg.align_axis:
        raise UserError("model.rig_positions adds the rig frame's positions to the axis frame's: it needs model.align_axis=true")
    if cfg.positional_frequencies < 0:
        raise UserError(f"model.positional_frequencies must be 0 or more (got {cfg.positional_frequencies})")
    decoder = PointDecoder(encoder.point_dim, cfg.volume_channels, encoder.extent, cfg.hidden_dim, cfg.n_blocks,
                           frequencies=cfg.positional_frequencies, fine_dim=encoder.fine_dim,
                           distance_head=cfg.distance_head, rig_positions=cfg.rig_positions)
    return OccupancyNetwork(encoder, decoder)


def build_rig_stereo(cfg: ModelConfig, rig_cfg: RigConfig) -> OccupancyNetwork:
    """Both views: features compared at each point's two projections and in the rig-frame volume."""
    return _build(cfg, views=2, rig_cfg=rig_cfg)


def build_rig_mono(cfg: ModelConfig, rig_cfg: RigConfig) -> OccupancyNetwork:
    """The same network on the left view only: the stereo model's twin."""
    return _build(cfg, views=1, rig_cfg=rig_cfg)
