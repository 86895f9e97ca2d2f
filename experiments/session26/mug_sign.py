"""Where an estimator takes a mug's top for its bottom: the share of mug views whose estimated axis
points the wrong way (more than 90 degrees off), by how the left camera sees the mug.

    python experiments/session26/mug_sign.py runs/s25/axis-bins-handle.pt --dataset runs/quick/dataset --split train

The bins are the cosine between the mug's up axis and the direction from the left camera to the
object: near -1 the camera looks into the opening, near +1 at the bottom, near 0 at the side.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import rig_directions
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.axis import estimator_from_record, load_axis_estimator

EDGES = (-1.0, -0.7, -0.3, 0.3, 0.7, 1.0)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("estimator")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--category", default="mug")
    args = p.parse_args()
    net = estimator_from_record(load_axis_estimator(args.estimator)).eval()
    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1)
    seen, flipped = [], []
    for obj, category in zip(data.objects, data.categories):
        if category != args.category:
            continue
        for view in range(data.views_per_object):
            rotation, K, world_to_cam = obj.cameras(view)
            up = np.asarray(rotation, np.float64)[:, 2]
            looking = np.asarray(world_to_cam, np.float64)[0, 2, :3]  # the left camera's z axis in the rig frame
            images = [torch.from_numpy(obj.image(view, k).transpose(2, 0, 1).astype(np.float32) / 255.0)[None] for k in range(2)]
            axis = rig_directions(net, images, Cameras.from_arrays(K, world_to_cam, net.image_size))[0, 0].double().numpy()
            seen.append(float(up @ looking))
            flipped.append(float(axis @ up) < 0)
    seen, flipped = np.array(seen), np.array(flipped)
    print(f"{len(seen)} {args.category} views of {args.dataset} ({args.split}): {flipped.mean():.0%} upside down")
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        inside = (seen >= lo) & (seen <= hi)
        if inside.any():
            print(f"  cos(up, view) in [{lo:+.1f}, {hi:+.1f}]: {inside.sum():4d} views, {flipped[inside].mean():4.0%} upside down")


if __name__ == "__main__":
    main()
