"""Where an axis estimator's error lies: in the image plane, in the tilt, or in the sign.

    python experiments/session21/where_the_error_is.py runs/s21/axis-pkg.pt --dataset runs/s18/dev
    python experiments/session21/where_the_error_is.py runs/s21/axis-pkg.pt --dataset runs/quick-s17/dataset --split train

Per category, median and 75th percentile (degrees) of:
- each view's answer projected on its image plane against the true axis projected alike, as lines
  (what one image shows best);
- the answer in the rig frame from the left view, from both views averaged (``rig_directions``, what
  rig-stereo uses), and from both views triangulated: each view's answer and the ray to the object's
  centre span a plane that holds the axis, and two planes meet in it; as a direction and as a line.
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


def degrees(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("estimator")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    args = p.parse_args()
    record = load_axis_estimator(args.estimator)
    net = estimator_from_record(record).eval()
    dataset = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1)
    kinds = ("in the image", "left", "both averaged", "both triangulated")
    errors = {k: {} for k in kinds}
    with torch.no_grad():
        for obj, category in zip(dataset.objects, dataset.categories):
            for view in range(dataset.views_per_object):
                rotation, K, world_to_cam = obj.cameras(view)
                true = np.asarray(rotation, np.float64)[:, 2]
                images = [torch.from_numpy(obj.image(view, c).transpose(2, 0, 1).astype(np.float32) / 255.0)[None] for c in range(2)]
                answers = [net(image)[0, 0].double().numpy() for image in images]
                turn = [np.asarray(world_to_cam[c], np.float64)[:3, :3] for c in range(2)]
                to_centre = [np.asarray(world_to_cam[c], np.float64)[:3, 3] for c in range(2)]
                normals = []
                for c in range(2):
                    t = turn[c] @ true
                    angle = degrees(answers[c][:2], t[:2])
                    errors["in the image"].setdefault(category, []).append(min(angle, 180 - angle))
                    normals.append(turn[c].T @ np.cross(to_centre[c], answers[c]))
                cameras = Cameras.from_arrays(K, world_to_cam, net.image_size)
                averaged = rig_directions(net, images, cameras)[0, 0].double().numpy()
                n = [v / np.linalg.norm(v) for v in normals]
                w, vectors = np.linalg.eigh(np.outer(n[0], n[0]) + np.outer(n[1], n[1]))
                triangulated = vectors[:, 0] * (1.0 if vectors[:, 0] @ averaged >= 0 else -1.0)
                for kind, estimate in (("left", turn[0].T @ answers[0]), ("both averaged", averaged), ("both triangulated", triangulated)):
                    errors[kind].setdefault(category, []).append(degrees(estimate, true))
    for kind in kinds:
        parts = []
        for category, e in errors[kind].items():
            e = np.array(e)
            text = f"{category} {np.median(e):3.0f} (p75 {np.percentile(e, 75):3.0f})"
            if kind != "in the image":
                text += f", line {np.median(np.minimum(e, 180 - e)):3.0f}"
            parts.append(text)
        print(f"{kind:<18} " + "; ".join(parts))


if __name__ == "__main__":
    main()
