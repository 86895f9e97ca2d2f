"""How well an estimator with a handle head (data.handle_axis) finds a mug's whole pose, per mug view.

    python experiments/session24/mug_pose.py runs/s24/axis-handle.pt --dataset runs/s18/dev

Prints, over every view of the split's mugs (both views averaged, as rig-stereo uses them): the
median angle of the axis, of its line (either end), of the handle, and of the axis once made
orthogonal to the estimated handle; and the share of views whose whole frame (``axis_frame`` on
the two answers) is within 30 and 45 degrees of the mug's own (the largest angle of any of its axes).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import rig_directions
from stereo_occ.models.cameras import Cameras
from stereo_occ.models.rig_volume import axis_frame
from stereo_occ.training.axis import estimator_from_record, load_axis_estimator


def degrees(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0))))


@torch.no_grad()
def answers_per_view(estimator, data: StereoOccupancyDataset, category: str):
    """Every view of the category's objects: its object-to-rig rotation and the estimator's answers in
    the rig frame, both views averaged (``(1, K, 3)``, as rig-stereo uses them)."""
    for obj, c in zip(data.objects, data.categories):
        if c != category:
            continue
        for view in range(data.views_per_object):
            rotation, K, world_to_cam = obj.cameras(view)
            images = [torch.from_numpy(obj.image(view, k).transpose(2, 0, 1).astype(np.float32) / 255.0)[None] for k in range(2)]
            yield (np.asarray(rotation, np.float64),
                   rig_directions(estimator, images, Cameras.from_arrays(K, world_to_cam, estimator.image_size)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("estimator")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    args = p.parse_args()
    net = estimator_from_record(load_axis_estimator(args.estimator)).eval()
    if not net.finds_handle:
        raise SystemExit("this estimator has no handle head (train it with data.handle_axis=x)")
    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1)
    rows = []
    for rotation, answer in answers_per_view(net, data, "mug"):
        frame = axis_frame(answer[:, 0], answer[:, 1])[0].double().numpy()
        axis, handle = answer[0, 0].double().numpy(), answer[0, 1].double().numpy()
        across = axis - (axis @ handle) * handle
        across /= np.linalg.norm(across)
        true_axis, true_handle = rotation[:, 2], rotation[:, 0]
        whole = max(degrees(frame[2], true_axis), degrees(frame[0], true_handle))
        rows.append((degrees(axis, true_axis), min(degrees(axis, true_axis), degrees(-axis, true_axis)),
                     degrees(handle, true_handle), degrees(across, true_axis), whole))
    rows = np.array(rows)
    names = ("axis", "axis line", "handle", "axis across the handle", "whole frame (worst axis)")
    print(f"{len(rows)} mug views of {args.dataset} ({args.split})")
    for name, column in zip(names, rows.T):
        print(f"  {name:<26} median {np.median(column):5.1f}  p75 {np.percentile(column, 75):5.1f}")
    print(f"  whole frame within 30 degrees: {np.mean(rows[:, 4] < 30):.2f}, within 45: {np.mean(rows[:, 4] < 45):.2f}")


if __name__ == "__main__":
    main()
