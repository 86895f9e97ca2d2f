"""Where a model puts the walls: cross-sections of its occupancy beside the truth.

For each chosen test object (first view), draws three slices through the object centre in the rig
frame: the horizontal plane of the two cameras (``y = 0``; the cameras are beyond the top edge, so
depth runs down the picture), and the vertical planes ``x = 0`` and ``z = 0``. Each panel shows the predicted
probability in grey, the true outline in red and the model's decision boundary (its threshold) in
blue, so a wall drawn too thick, too far or missing is visible at a glance.

    python experiments/session14/slices.py --checkpoint RUN/model_best.pt --dataset DATA \
        --objects mug/proc-0007 bowl/proc-0002 --out slices.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import trimesh

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair
from stereo_occ.evaluation.metrics import mesh_contains
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.checkpoint import load_model

PLANES = {"y = 0 (cameras at the top)": (0, 2, 1), "x = 0": (2, 1, 0), "z = 0": (0, 1, 2)}


def slice_points(axes: tuple[int, int, int], half: float, n: int) -> np.ndarray:
    u = np.linspace(-half, half, n)
    a, b = np.meshgrid(u, u, indexing="xy")
    points = np.zeros((n * n, 3))
    points[:, axes[0]] = a.ravel()
    points[:, axes[1]] = b.ravel()
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--objects", nargs="+", required=True, help="object ids of the test split")
    parser.add_argument("--out", required=True)
    parser.add_argument("--resolution", type=int, default=160)
    args = parser.parse_args()

    model, cfg = load_model(args.checkpoint, device="cpu")
    threshold = cfg.eval.threshold if cfg.eval.threshold is not None else 0.5
    data = StereoOccupancyDataset(args.dataset, "test", points_per_sample=1, uniform_only=True, views="first")
    half = cfg.dataset.rig.object_radius + cfg.dataset.occupancy.padding / 2  # where any object can be
    fig, axes = plt.subplots(len(args.objects), len(PLANES), figsize=(3.2 * len(PLANES), 3.2 * len(args.objects)),
                             squeeze=False)
    for row, object_id in enumerate(args.objects):
        index = data.object_ids.index(object_id)
        item = data[index]
        rotation = item["rotation"].numpy().astype(np.float64)
        mesh = trimesh.load(Path(args.dataset) / object_id / "mesh.ply", force="mesh")
        mesh.vertices = mesh.vertices @ rotation.T  # object frame -> rig frame
        code = encode_pair(model, item["left"], item["right"], Cameras.from_batch(item))
        for col, (title, plane) in enumerate(PLANES.items()):
            points = slice_points(plane, half, args.resolution)
            probs = decode_probs(model, code, points, 65536).reshape(args.resolution, args.resolution)
            inside = mesh_contains(mesh, points).reshape(args.resolution, args.resolution)
            ax = axes[row, col]
            extent = (-half, half, -half, half)
            ax.imshow(probs, origin="lower", extent=extent, cmap="gray", vmin=0, vmax=1)
            ax.contour(inside.astype(float), levels=[0.5], colors="red", linewidths=0.8, extent=extent, origin="lower")
            ax.contour(probs, levels=[threshold], colors="deepskyblue", linewidths=0.8, extent=extent, origin="lower")
            ax.set_title(f"{object_id}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"grey: probability; red: true outline; blue: the model's surface (threshold {threshold:.2f})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
