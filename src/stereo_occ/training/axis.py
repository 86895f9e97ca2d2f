"""Training the axis estimator (:mod:`stereo_occ.models.axis_estimator`) before the occupancy network.

Every view of the training split is a sample, one image at a time, left and right alike, with the
object's up axis (``data.up_axis`` of the object, in that camera's frame) as the answer. Each batch
is augmented on the fly: the camera rolled about its optical axis by a random angle (the image
turned about its centre, the answer turned about z) and mirrored half the time (x negated), which
are views the rig could have taken. The loss is a cross-entropy over directions on the sphere
(:func:`bin_loss`); a regression estimator (``axis.bins=0``, sessions 20 to 24) is trained with
:func:`axis_loss`, which asks for the line first and its sign second.

Where ``data.handle_axis`` says which way the training mugs' handles point, the estimator also
learns that direction (its handle head): a mug's handle in the camera's frame, and for a bowl or a
bottle, which have no side of their own, the direction towards the camera, so that a frame built on
it turns the same way for every object (:func:`~stereo_occ.models.rig_volume.axis_frame`).

The result is one file (:func:`save_axis_estimator`) that rig models built with
``model.align_axis`` load at the start of their training (``model.axis_estimator``) and keep frozen;
the experiment trains one and shares it between rig-stereo and rig-mono, so the twins still differ
only in the second view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..config import CATEGORIES, AxisConfig, Config, to_dict
from ..data.dataset import StereoOccupancyDataset
from ..errors import UserError
from ..models.axis_estimator import AxisEstimator, rig_directions
from ..models.cameras import Cameras
from .distributed import autocast, autocast_dtype

FORMAT = "stereo-occ axis estimator"
VERSION = 1


TOWARDS_THE_CAMERA = (0.0, 0.0, -1.0)  # in a camera's frame, from the object (in front, at +z) back to it


@dataclass
class AxisSamples:
    """Every (object, view, camera) image of a split with its answers."""

    images: Tensor  # (N, 3, H, W) uint8
    axes: Tensor  # (N, 3) the up axis in the image's camera frame
    categories: Tensor  # (N,) index into CATEGORIES
    handles: Tensor | None = None  # (N, 3) a mug's handle, towards the camera for the others; None: not asked

    @classmethod
    def from_dataset(cls, dataset: StereoOccupancyDataset, up_axis: str, max_views: int = 0,
                     handle_axis: str = "") -> "AxisSamples":
        """``max_views`` > 0: the first that many views of each object only. ``handle_axis``: the axis
        of the objects' own frame a mug's handle points along ("": no handle answers)."""
        column = "xyz".index(up_axis)
        images, axes, handles, categories = [], [], [], []
        views = dataset.views_per_object if max_views <= 0 else min(max_views, dataset.views_per_object)
        for obj, category in zip(dataset.objects, dataset.categories):
            for view in range(views):
                rotation, _, world_to_cam = obj.cameras(view)
                rotation = np.asarray(rotation, dtype=np.float64)
                for camera in range(2):
                    to_camera = np.asarray(world_to_cam[camera], dtype=np.float64)[:3, :3]
                    images.append(np.ascontiguousarray(obj.image(view, camera).transpose(2, 0, 1)))
                    axes.append(to_camera @ rotation[:, column])
                    if handle_axis:
                        handles.append(to_camera @ rotation[:, "xyz".index(handle_axis)] if category == "mug"
                                       else np.array(TOWARDS_THE_CAMERA))
                    categories.append(CATEGORIES.index(category))
        return cls(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(axes)).float(), torch.tensor(categories),
                   torch.from_numpy(np.stack(handles)).float() if handle_axis else None)

    @classmethod
    def concatenate(cls, parts: list["AxisSamples"]) -> "AxisSamples":
        """One set of samples from several (e.g. the training splits of several datasets)."""
        if len({p.images.shape[1:] for p in parts}) > 1:
            raise UserError("axis.extra_datasets: every dataset must have the same image size as the main one "
                            f"(got {sorted({tuple(p.images.shape[-2:]) for p in parts})})")
        handles = None if parts[0].handles is None else torch.cat([p.handles for p in parts])
        return cls(torch.cat([p.images for p in parts]), torch.cat([p.axes for p in parts]),
                   torch.cat([p.categories for p in parts]), handles)

    def answers(self, pick: Tensor) -> Tensor:
        """``(len(pick), K, 3)``: each picked image's axis, and its handle's direction where asked."""
        if self.handles is None:
            return self.axes[pick, None]
        return torch.stack([self.axes[pick], self.handles[pick]], 1)


def roll_and_mirror(images: Tensor, axes: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Float images ``(B, 3, H, W)`` in [0, 1] and their camera-frame directions (``(B, 3)``, or
    ``(B, K, 3)`` for several per image), each camera rolled about its optical axis by a random angle
    and mirrored half the time; the white background fills the corners.

    Exact for a principal point at the image centre (the rig's, ``data/rig.py``): rolling a pinhole
    camera by ``phi`` turns its image by ``phi`` about that point and a camera-frame direction by
    ``phi`` about z.
    """
    b = images.shape[0]
    phi = torch.rand(b, generator=generator) * (2 * math.pi)
    c, s = torch.cos(phi), torch.sin(phi)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, s, -s, c  # output pixel -> source pixel
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    turned = F.grid_sample(images - 1.0, grid, align_corners=False, padding_mode="zeros") + 1.0
    per_image = (b,) + (1,) * (axes.dim() - 2)  # broadcasts over the directions of one image
    c, s = c.view(per_image), s.view(per_image)
    rolled = torch.stack([c * axes[..., 0] - s * axes[..., 1], s * axes[..., 0] + c * axes[..., 1], axes[..., 2]], -1)
    mirror = torch.rand(b, generator=generator) < 0.5
    turned = torch.where(mirror[:, None, None, None], turned.flip(-1), turned)
    rolled = torch.where(mirror.view(per_image + (1,)), rolled * rolled.new_tensor([-1.0, 1.0, 1.0]), rolled)
    return turned, rolled


def axis_loss(estimate: Tensor, target: Tensor, sign_weight: float) -> Tensor:
    """``1 - cos^2`` (the line, whichever way it points) plus ``sign_weight * (1 - cos)`` (its sign).

    The cosine alone never finds a mug's axis, not even on the training images: early on the network
    cannot tell a mug's top from its bottom, and where either is as likely the cosine's gradient
    vanishes for the line as well, so the answers stay at right angles to the axis (about 85 degrees
    after 500 steps on mugs alone). The line term has no such trap; the cosine term then turns the
    answer the right way round wherever the image tells (docs/training.md, "Session 21").

    With ``sign_weight`` under 2 the wrong end is a local minimum: at an angle ``pi - e`` the slope is
    about ``(sign_weight - 2) e``, the line term holding the answer there more strongly than the sign
    term pushes it off. An object whose answer starts near its bottom stays upside down (a quarter of
    the bottles with 0.5 in session 21, most of them in one run of session 24; with 3 the trap is gone).
    """
    cosine = (estimate.float() * target).sum(-1)
    return (1.0 - cosine.square()).mean() + sign_weight * (1.0 - cosine).mean()


def estimator_loss(estimate: Tensor, target: Tensor, sign_weight: float, handle_weight: float) -> Tensor:
    """The estimator's ``(B, K, 3)`` answers against their targets: :func:`axis_loss` on the axis, and
    ``handle_weight * (1 - cos)`` on the handle's direction where there is one (a mug's handle has a
    side, so the plain cosine: its two ends are not alike)."""
    loss = axis_loss(estimate[:, 0], target[:, 0], sign_weight)
    if estimate.shape[1] > 1:
        loss = loss + handle_weight * (1.0 - (estimate[:, 1].float() * target[:, 1]).sum(-1)).mean()
    return loss


def bin_loss(logits: Tensor, target: Tensor, directions: Tensor, kappa: float, handle_weight: float) -> Tensor:
    """A classifier estimator's ``(B, K, bins)`` logits over ``directions`` against ``(B, K, 3)`` unit
    targets: the cross-entropy to soft labels ``softmax(kappa * cos)`` over the bins (``kappa`` = 40:
    a spread of about 9 degrees, wider than the bins' 6 degree spacing, so neighbouring bins share
    the answer), the handle's weighted by ``handle_weight``. Both ends of an axis are directions of
    their own: where the image does not tell the top, the distribution keeps two peaks."""
    soft = (kappa * (target.float() @ directions.T)).softmax(-1)
    per_answer = -(soft * logits.float().log_softmax(-1)).sum(-1).mean(0)  # (K,)
    return per_answer[0] + handle_weight * per_answer[1:].sum()


@torch.no_grad()
def axis_errors(estimator: AxisEstimator, dataset: StereoOccupancyDataset, up_axis: str, views: int = 2,
                handle_axis: str = "") -> dict[str, list[float]]:
    """Per category, the angle in degrees between the estimate in the rig frame (``views`` = 2: both
    views averaged, as rig-stereo uses it; 1: the left one, as rig-mono) and the true axis, per item;
    for an estimator that finds the handle and a known ``handle_axis``, also "mug handle": the angle
    between the estimated and the true direction of each mug's handle."""
    column = "xyz".index(up_axis)
    errors: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    if estimator.finds_handle and handle_axis:
        errors["mug handle"] = []
    estimator.eval()
    for obj, category in zip(dataset.objects, dataset.categories):
        for view in range(dataset.views_per_object):
            rotation, K, world_to_cam = obj.cameras(view)
            cameras = Cameras.from_arrays(K, world_to_cam, estimator.image_size)
            images = [torch.from_numpy(obj.image(view, cam).transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
                      for cam in range(views)]
            estimate = rig_directions(estimator, images, cameras)[0].double().numpy()
            rotation = np.asarray(rotation, np.float64)
            errors[category].append(_degrees(estimate[0], rotation[:, column]))
            if category == "mug" and "mug handle" in errors:
                errors["mug handle"].append(_degrees(estimate[1], rotation[:, "xyz".index(handle_axis)]))
    return errors


def _degrees(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0))))


def median_errors(errors: dict[str, list[float]]) -> dict[str, float]:
    return {c: float(np.median(v)) for c, v in errors.items() if v}


UNLEARNT_DEGREES = 60.0
"""A median angle on val above this for every category: the estimator answers at random (random
directions are 90 degrees off at the median)."""


def describe(summary: dict) -> str:
    """For the console: how far off a trained estimator is on the val split, and a warning where it
    has not learnt at all (until session 27 a classifier without ``data.handle_axis`` never did:
    docs/training.md, "Session 27")."""
    medians = summary.get("val_median_degrees")
    if not medians:
        return "axis estimator: no val split to measure it on"
    line = "axis estimator: median angle to the true axis on val (degrees): " + ", ".join(
        f"{c} {d:.0f}" for c, d in medians.items())
    axes = [d for c, d in medians.items() if c != "mug handle"]
    if axes and min(axes) > UNLEARNT_DEGREES:
        line += (f"\nWARNING: the axis estimator has not learnt (every category over {UNLEARNT_DEGREES:.0f} degrees): "
                 f"check that data.up_axis names the objects' up axis, or train it for longer (axis.steps)")
    return line


def axis_lr_factor(ac: AxisConfig, step: int) -> float:
    """The learning rate of ``train-axis`` at ``step`` (from 0) as a share of ``axis.lr``: a linear
    warm-up over ``axis.warmup_steps``, then constant or (``axis.lr_schedule=cosine``) a half cosine to 0
    at ``axis.steps``."""
    warm = min(1.0, (step + 1) / max(ac.warmup_steps, 1))
    if ac.lr_schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, ac.steps) / max(ac.steps, 1)))
    return warm


def train_axis_estimator(cfg: Config, dataset_root: str | Path, out: str | Path, *, show_progress: bool = True) -> dict:
    """Train an estimator on the training split of ``dataset_root`` and those of
    ``axis.extra_datasets`` (``cfg.axis``), write it to ``out`` (a file), and return its summary: the
    median angle per category on the val split of ``dataset_root``.

    The images are decoded into memory (uint8; 25 KB a 64 px pair, 100 KB at 128 px): 20 MB for the
    quick dataset and 150 MB for the long one; ``axis.views_per_object`` caps the views of each
    object for datasets like the study's, whose 1,000 views an object would take about 40 GB.
    """
    ac, out = cfg.axis, Path(out)
    if out.is_dir():
        raise UserError(f"{out} is a folder; give the estimator's file name (e.g. {out / 'axis_estimator.pt'})")
    torch.manual_seed(ac.seed)
    generator = torch.Generator().manual_seed(ac.seed)
    handle_axis = cfg.data.handle_axis
    samples = AxisSamples.concatenate([
        AxisSamples.from_dataset(StereoOccupancyDataset(root, "train", points_per_sample=1), cfg.data.up_axis,
                                 ac.views_per_object, handle_axis)
        for root in [dataset_root, *ac.extra_datasets]])
    image_size = int(samples.images.shape[-1])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp_dtype = autocast_dtype(ac.precision, device, bf16_on_cpu=True)
    estimator = AxisEstimator(image_size=image_size, handle=bool(handle_axis), bins=ac.bins, norm=ac.norm).to(device)
    optimiser = torch.optim.Adam(estimator.parameters(), lr=ac.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: axis_lr_factor(ac, step))
    bar = tqdm(range(ac.steps), desc="train the axis estimator", disable=not show_progress, mininterval=1.0)
    for _ in bar:
        pick = torch.randint(len(samples.axes), (ac.batch_size,), generator=generator)
        images, answers = roll_and_mirror(samples.images[pick].float() / 255.0, samples.answers(pick), generator)
        with autocast(device, amp_dtype):
            raw = estimator.raw(images.to(device))
        if estimator.bins:
            loss = bin_loss(raw, answers.to(device), estimator.directions, ac.kappa, ac.handle_weight)
        else:
            loss = estimator_loss(estimator.decode(raw), answers.to(device), ac.sign_weight, ac.handle_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    precise_batch_norm(estimator, samples, generator, device, batches=ac.precise_bn_batches, batch_size=ac.batch_size)
    estimator = estimator.cpu()  # in eval mode (precise_batch_norm leaves it so): its BatchNorm reads those statistics
    summary = {"steps": ac.steps, "batch_size": ac.batch_size, "lr": ac.lr, "seed": ac.seed, "sign_weight": ac.sign_weight,
               "bins": ac.bins, "train_images": len(samples.axes),
               "up_axis": cfg.data.up_axis, "handle_axis": handle_axis, "precision": "bf16" if amp_dtype == torch.bfloat16 else "fp32",
               "axis": to_dict(ac)}  # every setting, so an experiment can tell a stale estimator (experiment.py)
    try:
        val = StereoOccupancyDataset(dataset_root, "val", points_per_sample=1)
    except UserError:
        val = None
    if val is not None:
        summary["val_median_degrees"] = median_errors(axis_errors(estimator, val, cfg.data.up_axis, handle_axis=handle_axis))
    save_axis_estimator(estimator, out, summary)
    return summary


@torch.no_grad()
def precise_batch_norm(estimator: AxisEstimator, samples: AxisSamples, generator: torch.Generator,
                       device: torch.device, batches: int = 50, batch_size: int = 64) -> None:
    """Measure the BatchNorm layers' statistics afresh, with the final weights, over ``batches``
    batches of training images rolled and mirrored as in training (an equal-weight average; fp32).

    The running averages kept during training lag behind the weights: an estimator trained for 2,000
    steps at a constant rate answered 3-5 degrees off for bowls and bottles on val with batch
    statistics and 78-100 with its running ones; with statistics measured so, 3 and 4
    (docs/training.md, "Session 28"). No-op for a GroupNorm estimator and for ``batches`` = 0 (the
    running averages stay)."""
    norms = [m for m in estimator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not norms or batches <= 0:
        estimator.eval()
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    estimator.train()
    for _ in range(batches):
        pick = torch.randint(len(samples.axes), (batch_size,), generator=generator)
        images, _ = roll_and_mirror(samples.images[pick].float() / 255.0, samples.answers(pick), generator)
        estimator.features(images.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    estimator.eval()


def save_axis_estimator(estimator: AxisEstimator, path: Path, summary: dict) -> None:
    """Tensors and plain values only, so that it loads with ``weights_only=True``; written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"format": FORMAT, "version": VERSION, "width": estimator.width, "image_size": estimator.image_size,
              "handle": estimator.finds_handle, "bins": estimator.bins, "norm": estimator.norm,
              "state_dict": estimator.state_dict(), "summary": summary}
    partial = path.with_name(path.name + ".partial")
    torch.save(record, partial)
    partial.replace(path)


def estimator_from_record(record: dict) -> AxisEstimator:
    """The estimator a :func:`load_axis_estimator` record holds, with its weights, in eval mode."""
    estimator = AxisEstimator(record["width"], record["image_size"], handle=bool(record.get("handle", False)),
                              bins=int(record.get("bins", 0)))  # files before session 25 regress; the state dict says head_norm
    estimator.load_state_dict(record["state_dict"])
    return estimator.eval()  # trained: its BatchNorm reads the running statistics


def load_axis_estimator(path: str | Path) -> dict:
    """The record :func:`save_axis_estimator` wrote (``weights_only=True``); a clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.axis_estimator: file not found: {path} (train one with `stereo-occ train-axis`)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt files fail in many ways
        raise UserError(f"model.axis_estimator: cannot read {path} ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(f"model.axis_estimator: {path} is not an axis estimator written by `stereo-occ train-axis`")
    if record.get("version") != VERSION:
        raise UserError(f"model.axis_estimator: {path} has version {record.get('version')}, this stereo-occ reads {VERSION}")
    return record
