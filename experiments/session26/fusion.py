"""How three ways of reading an axis estimator compare, per category: the left view alone (rig-mono),
both views' decoded answers averaged (sessions 20 to 25), and the product of both views'
distributions (rig_directions since session 26).

    python experiments/session26/fusion.py runs/s25/axis-bins-handle.pt --dataset runs/s18/dev

Prints the median and 75th percentile angle (degrees) of the axis per category, and for mugs the
handle and the share of views whose whole frame (axis_frame on the two answers) is within 45 degrees.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from tqdm import tqdm

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import averaged_directions, rig_directions
from stereo_occ.models.cameras import Cameras
from stereo_occ.models.rig_volume import axis_frame
from stereo_occ.training.axis import estimator_from_record, load_axis_estimator

READINGS = {
    "left view": lambda net, images, cameras: rig_directions(net, images[:1], cameras),
    "averaged": averaged_directions,
    "product": rig_directions,
}


def angle(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(a @ b, -1.0, 1.0))))


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("estimator")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    args = p.parse_args()
    net = estimator_from_record(load_axis_estimator(args.estimator)).eval()
    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1)
    rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for obj, category in tqdm(list(zip(data.objects, data.categories)), desc="objects"):
        for view in range(data.views_per_object):
            rotation, K, world_to_cam = obj.cameras(view)
            rotation = np.asarray(rotation, np.float64)
            cameras = Cameras.from_arrays(K, world_to_cam, net.image_size)
            images = [torch.from_numpy(obj.image(view, k).transpose(2, 0, 1).astype(np.float32) / 255.0)[None] for k in range(2)]
            for name, read in READINGS.items():
                answer = read(net, images, cameras)
                axis = answer[0, 0].double().numpy()
                row = [angle(axis, rotation[:, 2])]
                if category == "mug" and net.finds_handle:
                    frame = axis_frame(answer[:, 0], answer[:, 1])[0].double().numpy()
                    row += [angle(answer[0, 1].double().numpy(), rotation[:, 0]),
                            max(angle(frame[2], rotation[:, 2]), angle(frame[0], rotation[:, 0]))]
                rows.setdefault((name, category), []).append(tuple(row))
    for (name, category), values in rows.items():
        v = np.array(values)
        line = f"{name:<10} {category:<7} axis median {np.median(v[:, 0]):5.1f} p75 {np.percentile(v[:, 0], 75):5.1f}"
        if v.shape[1] == 3:
            line += (f"  handle median {np.median(v[:, 1]):5.1f}  whole frame within 45: {np.mean(v[:, 2] < 45):.2f}"
                     f" within 30: {np.mean(v[:, 2] < 30):.2f}")
        print(line)


if __name__ == "__main__":
    main()
