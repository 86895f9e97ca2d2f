"""Does averaging the axis estimator over turned and mirrored copies of an image find a mug's top more often?

    python experiments/session29/estimator_tta.py EST --dataset runs/quick/dataset --split test

Each image is also shown turned by quarter turns and mirrored (``models/axis_estimator.py``,
``image_copies``; views the estimator was trained on, and exact ones); each copy's distribution over
the bins is brought back to the image's camera frame and the copies' are averaged before decoding
(``model.axis_copies``). Prints, per category and number of copies, the share of views whose axis
points the wrong way (more than 90 degrees off), the median angle and the share within 20 degrees,
both views combined as rig-stereo combines them (``rig_directions``).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import rig_directions
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.axis import estimator_from_record, load_axis_estimator


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("estimator")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--copies", type=int, nargs="+", default=[1, 2, 4, 8])
    args = p.parse_args()
    net = estimator_from_record(load_axis_estimator(args.estimator)).eval()
    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1)
    rows: dict[str, dict[str, list[float]]] = {}
    for obj, category in zip(data.objects, data.categories):
        for view in range(data.views_per_object):
            rotation, K, world_to_cam = obj.cameras(view)
            up = np.asarray(rotation, np.float64)[:, 2]
            cameras = Cameras.from_arrays(K, world_to_cam, net.image_size)
            images = [torch.from_numpy(obj.image(view, k).transpose(2, 0, 1).astype(np.float32) / 255.0)[None] for k in range(2)]
            for copies in args.copies:
                name = f"{copies} cop{'y' if copies == 1 else 'ies'}"
                axis = rig_directions(net, images, cameras, copies)[0, 0].double().numpy()
                angle = math.degrees(math.acos(float(np.clip(axis @ up, -1, 1))))
                rows.setdefault(f"{category} {name}", {"angle": []})["angle"].append(angle)
    for key, value in sorted(rows.items()):
        a = np.array(value["angle"])
        print(f"{key:<18} {len(a):4d} views: {np.mean(a > 90):4.0%} upside down, median {np.median(a):5.1f} deg, "
              f"within 20 deg {np.mean(a < 20):4.0%}")


if __name__ == "__main__":
    main()
