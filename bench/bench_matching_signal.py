"""How much depth plain stereo matching reads off a built dataset's renders, against a blind guess.

    python bench/bench_matching_signal.py --dataset runs/quick/dataset [--split test] [--views 4]
        [--planes 96] [--windows 1,3,5]

A camera-aware model can only place a thin wall where the pair says where the visible surface is.
This measures what the pair says with no learning at all: for every object pixel of the left view,
the depth of the visible surface from a plane sweep of the raw RGB images (fronto-parallel planes in
the left camera over the sphere any object lies in; each pixel lifted onto every plane, projected
into the right camera with the stored K and world_to_cam, sum of squared RGB differences averaged
over a k x k window, the best plane wins: ``models/plane_sweep.py``, which rig-stereo reads with
``model.sweep_planes``). The reference, measured in the same run: the best single
depth per image (the median of the true depths), which knows nothing of the pair.

Columns, in object units against the rendered depth: median and mean absolute error, and the share
of pixels within 0.03 (a mug wall is 0.02-0.07 thick). On the quick dataset's test split (64 px,
2026-11-26): the 3x3 sweep puts 34% of the pixels within a wall, the blind guess 19%; at 128 px,
42% (docs/training.md, "Session 5"). Session 32, the quick config's 46 degree rig (`runs/quick31`):
38%, and 63% with a print on every object (`dataset.render.pattern=blotches`; "Session 32").
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.data.rig import OBJECT_RADIUS
from stereo_occ.models.cameras import LEFT, Cameras
from stereo_occ.models.plane_sweep import plane_depths, sweep_costs

WALL = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a built dataset folder (stereo-occ dataset)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--views", type=int, default=4, help="views per object (first N)")
    parser.add_argument("--planes", type=int, default=96)
    parser.add_argument("--windows", default="1,3,5", help="SSD window sizes, comma-separated")
    args = parser.parse_args()
    windows = [int(k) for k in args.windows.split(",")]
    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=16, load_depth=True, views=args.views)
    errors: dict[str, list[torch.Tensor]] = {"best single depth (reference)": []}
    errors.update({f"sweep, {k}x{k} SSD": [] for k in windows})
    with torch.no_grad():
        for start in range(0, len(data), 8):
            batch = default_collate([data[i] for i in range(start, min(start + 8, len(data)))])
            cameras = Cameras.from_batch(batch)
            left, right = batch["left"], batch["right"]
            n, _, h, w = left.shape
            depths = plane_depths(cameras, LEFT, args.planes, OBJECT_RADIUS)
            ssd = sweep_costs(left, right, cameras, LEFT, depths, window=1)  # (B, D, H, W)
            truth = batch["depth"][:, LEFT]
            fg = truth > 0
            for i in range(n):
                t = truth[i][fg[i]]
                errors["best single depth (reference)"].append((t - t.median()).abs())
            for k in windows:
                cost = F.avg_pool2d(ssd, k, stride=1, padding=k // 2, count_include_pad=False) if k > 1 else ssd
                best = depths[:, :, None, None].expand(-1, -1, h, w).gather(1, cost.argmin(1, keepdim=True))[:, 0]
                for i in range(n):
                    errors[f"sweep, {k}x{k} SSD"].append((best[i][fg[i]] - truth[i][fg[i]]).abs())
    print(f"{args.dataset} {args.split}: {len(data)} views at {w}x{h} px, left-view object pixels; "
          f"depth error in object units ({args.planes} planes, {2 * OBJECT_RADIUS / (args.planes - 1):.3f} apart)")
    print(f"{'':>32} {'median':>7} {'mean':>7} {f'<{WALL}':>6} {'x ref':>6}")
    reference = (torch.cat(errors["best single depth (reference)"]) < WALL).float().mean()
    for name, values in errors.items():
        e = torch.cat(values)
        within = (e < WALL).float().mean()
        print(f"{name:>32} {e.median():7.3f} {e.mean():7.3f} {within:6.2f} {within / reference:6.2f}")


if __name__ == "__main__":
    main()
