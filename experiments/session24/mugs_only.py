"""Is a mug's axis hard for the estimator, or crowded out by the other categories? The estimator of
`stereo-occ train-axis` trained the same way (rolled and mirrored images, the loss of
training/axis.py, bf16 where native) on one category's images only, then its angles per view.

    python experiments/session24/mugs_only.py --dataset runs/quick/dataset --dev runs/s18/dev \
        --category mug --steps 2000 --sign-weight 3 --out runs/s24/axis-mugs-only.pt

With ``--orthogonal`` the axis answer is made orthogonal to the handle answer (Gram-Schmidt, the
handle first) before the loss and before it is measured: a loss on the whole rotation, in which the
handle's answer, which the estimator finds, constrains the axis to the plane it must lie in.

Prints the median angle of the axis and of its line (either end), and of the handle, on the
training images and on the development set's mugs, with both views averaged.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.training.axis import AxisSamples, estimator_loss, roll_and_mirror, save_axis_estimator
from stereo_occ.training.distributed import autocast, autocast_dtype

from mug_pose import answers_per_view, degrees  # beside this script


def orthogonal(answers: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 3)`` axis and handle -> the axis made orthogonal to the handle, and the handle."""
    axis, handle = answers[:, 0], answers[:, 1]
    axis = torch.nn.functional.normalize(axis - (axis * handle).sum(-1, keepdim=True) * handle, dim=-1)
    return torch.stack([axis, handle], 1)


@torch.no_grad()
def errors_of(estimator: AxisEstimator, data: StereoOccupancyDataset, category: str, across: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per view of the category's objects, both views averaged: the axis's angle and the handle's."""
    axes, handles = [], []
    for rotation, answer in answers_per_view(estimator, data, category):
        if across:
            answer = orthogonal(answer)
        a, h = answer[0].double().numpy()
        axes.append(degrees(a, rotation[:, 2]))
        handles.append(degrees(h, rotation[:, 0]))
    return np.array(axes), np.array(handles)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--category", default="mug", choices=CATEGORIES)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sign-weight", type=float, default=3.0)
    p.add_argument("--out", required=True)
    p.add_argument("--orthogonal", action="store_true", help="the axis made orthogonal to the handle first")
    args = p.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train = StereoOccupancyDataset(args.dataset, "train", points_per_sample=1)
    every = AxisSamples.from_dataset(train, "z", 16, "x")
    keep = every.categories == CATEGORIES.index(args.category)
    samples = AxisSamples(every.images[keep], every.axes[keep], every.categories[keep], every.handles[keep])
    estimator = AxisEstimator(handle=True)
    optimiser = torch.optim.Adam(estimator.parameters(), lr=0.002)
    dtype = autocast_dtype("auto", torch.device("cpu"), bf16_on_cpu=True)
    for _ in tqdm(range(args.steps), desc=f"train on {int(keep.sum())} {args.category} images", mininterval=2.0):
        pick = torch.randint(len(samples.axes), (args.batch,), generator=generator)
        images, answers = roll_and_mirror(samples.images[pick].float() / 255.0, samples.answers(pick), generator)
        with autocast(torch.device("cpu"), dtype):
            estimate = estimator(images)
        if args.orthogonal:
            estimate = orthogonal(estimate.float())
        loss = estimator_loss(estimate, answers, args.sign_weight, 1.0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    save_axis_estimator(estimator, Path(args.out), {"up_axis": "z", "handle_axis": "x", "only": args.category})
    for name, data in (("train", train), ("dev", StereoOccupancyDataset(args.dev, "test", points_per_sample=1))):
        axis, handle = errors_of(estimator.eval(), data, args.category, args.orthogonal)
        print(f"{name}: {args.category} axis median {np.median(axis):.0f}, line {np.median(np.minimum(axis, 180 - axis)):.0f}"
              + (f", handle {np.median(handle):.0f}" if args.category == "mug" else ""))


if __name__ == "__main__":
    main()
