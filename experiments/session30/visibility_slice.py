"""A picture of what the pair can see: one test item cut by the horizontal plane through the object's
centre (the plane both cameras stand in, so they look down from the top of each panel), the points
classed by both views' true depth (evaluation/visibility.py), and each model's wrong points coloured by
their class.

    python experiments/session30/visibility_slice.py --dataset runs/quick29b/dataset \
        rig-mono=runs/quick29b/runs/rig-mono/model_best.pt rig-stereo=runs/quick29b/runs/rig-stereo/model_best.pt \
        --object 0 --out docs/images/s30-what-the-pair-sees.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from stereo_occ.data.dataset import StereoOccupancyDataset  # noqa: E402
from stereo_occ.data.occupancy import inside  # noqa: E402
from stereo_occ.evaluation.evaluate import decode_probs, encode_pair, inference_dtype  # noqa: E402
from stereo_occ.evaluation.threshold import resolved  # noqa: E402
from stereo_occ.evaluation.visibility import Visibility  # noqa: E402
from stereo_occ.models.cameras import Cameras  # noqa: E402
from stereo_occ.training.checkpoint import load_model  # noqa: E402
from stereo_occ.training.distributed import autocast  # noqa: E402

CLASS_COLOURS = ["#dfe9f7", "#f6d58e", "#c9c9c9", "#ffffff"]  # seen empty, visible surface, blind, outside
WRONG_COLOURS = ["#2f6fdb", "#e0a000", "#555555", "#000000"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="name=checkpoint")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--object", type=int, nargs="+", default=[0], help="indices in the split")
    parser.add_argument("--size", type=int, default=220, help="grid points a side")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1, uniform_only=True, views="first",
                                  load_depth=True)
    models = []
    for spec in args.models:
        name, path = spec.split("=", 1)
        model, cfg = load_model(path)
        eval_cfg = resolved(cfg.eval, cfg.eval.threshold)
        model.set_axis_copies(eval_cfg.axis_copies)
        models.append((name, model, eval_cfg))

    half = 0.75  # every object lies within 0.75 of its centre (the quick rig's object_radius)
    # rig frame, y = 0; image rows from z = +half (towards the cameras, at the top) to -half
    x, z = np.meshgrid(np.linspace(-half, half, args.size), np.linspace(half, -half, args.size))
    grid = np.stack([x.ravel(), np.zeros(x.size), z.ravel()], axis=1)
    fig, axes = plt.subplots(len(args.object), 1 + len(models), figsize=(3.2 * (1 + len(models)), 3.3 * len(args.object)),
                             squeeze=False)
    for row, index in enumerate(args.object):
        item = data[index]
        rotation = item["rotation"].numpy().astype(np.float64)
        occupied = inside(data.objects[index].mesh(), grid @ rotation)  # p_obj = R^T p_rig
        vis = Visibility.of_points(grid, item["depth"].numpy(), item["K"].numpy(), item["world_to_cam"].numpy())
        classes = np.full(len(grid), 3)
        classes[vis.seen], classes[vis.surface], classes[vis.hidden] = 0, 1, 2
        extent = (-half, half, -half, half)
        shape = (args.size, args.size)

        def outline(ax):
            ax.contour(x, z, occupied.reshape(shape).astype(float), levels=[0.5], colors="k", linewidths=0.8)
            ax.set_xticks([]), ax.set_yticks([])

        ax = axes[row, 0]
        ax.imshow(classes.reshape(shape), cmap=ListedColormap(CLASS_COLOURS), vmin=0, vmax=3, extent=extent,
                  interpolation="nearest")
        outline(ax)
        ax.set_title(f"{data.categories[index]} {data.object_ids[index].split('/')[-1]}: seen empty (blue),\n"
                     "visible wall (yellow), blind (grey)", fontsize=9)
        for col, (name, model, eval_cfg) in enumerate(models, start=1):
            with autocast(torch.device("cpu"), inference_dtype(model, eval_cfg.precision)):
                code = encode_pair(model, item["left"], item["right"], Cameras.from_batch(item))
                probs = decode_probs(model, code, grid.astype(np.float32), eval_cfg.batch_points)
            predicted = probs >= eval_cfg.threshold
            wrong = np.where(predicted != occupied, classes, 4)
            image = np.ma.masked_equal(wrong, 4)
            ax = axes[row, col]
            ax.imshow(np.where(predicted, 0.35, 0.0).reshape(shape), cmap="Greys", vmin=0, vmax=1, extent=extent,
                      interpolation="nearest")
            ax.imshow(image.reshape(shape), cmap=ListedColormap(WRONG_COLOURS), vmin=0, vmax=3, extent=extent,
                      interpolation="nearest")
            outline(ax)
            ax.set_title(f"{name}: wrong where seen empty (blue),\nat the visible wall (orange), blind (dark)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
