"""How much depth plain stereo matching reads off a built dataset's renders, against a blind guess.

    python bench/bench_matching_signal.py --dataset runs/quick/dataset [--split test] [--views 4]
        [--sweeps 96x1,96x3,96x5,32x3,32x3+]

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
from torch.utils.data import default_collate

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.data.rig import OBJECT_RADIUS
from stereo_occ.models.cameras import LEFT, Cameras
from stereo_occ.models.plane_sweep import plane_sweep

WALL = 0.03


def parse_sweeps(text: str) -> list[tuple[int, int, bool]]:
    """``"32x3,32x3+"`` -> [(planes, window, refine)]: ``+`` refines between the planes (the model's sweep)."""
    sweeps = []
    for part in text.split(","):
        refine = part.endswith("+")
        planes, window = part.rstrip("+").split("x")
        sweeps.append((int(planes), int(window), refine))
    return sweeps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="a built dataset folder (stereo-occ dataset)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--views", type=int, default=4, help="views per object (first N)")
    parser.add_argument("--sweeps", default="96x1,96x3,96x5,32x3,32x3+",
                        help="sweeps to measure, comma-separated PLANESxWINDOW, '+' to refine between planes "
                             "(32x3+ is what rig-stereo reads with model.sweep_planes=32)")
    args = parser.parse_args()
    sweeps = parse_sweeps(args.sweeps)
    data = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=16, load_depth=True, views=args.views)
    errors: dict[str, list[torch.Tensor]] = {"best single depth (reference)": []}
    name = {s: f"{s[0]} planes, {s[1]}x{s[1]} SSD{', refined' if s[2] else ''}" for s in sweeps}
    errors.update({name[s]: [] for s in sweeps})
    with torch.no_grad():
        for start in range(0, len(data), 8):
            batch = default_collate([data[i] for i in range(start, min(start + 8, len(data)))])
            cameras = Cameras.from_batch(batch)
            left, right = batch["left"], batch["right"]
            n, _, h, w = left.shape
            truth = batch["depth"][:, LEFT]
            fg = truth > 0
            for i in range(n):
                t = truth[i][fg[i]]
                errors["best single depth (reference)"].append((t - t.median()).abs())
            for planes, window, refine in sweeps:
                swept, _ = plane_sweep(left, right, cameras, planes, OBJECT_RADIUS, window=window, refine=refine)
                for i in range(n):
                    errors[name[planes, window, refine]].append((swept[i, 0][fg[i]] - truth[i][fg[i]]).abs())
    print(f"{args.dataset} {args.split}: {len(data)} views at {w}x{h} px, left-view object pixels; "
          f"depth error in object units")
    print(f"{'':>36} {'median':>7} {'mean':>7} {f'<{WALL}':>6} {'x ref':>6}")
    reference = (torch.cat(errors["best single depth (reference)"]) < WALL).float().mean()
    for label, values in errors.items():
        e = torch.cat(values)
        within = (e < WALL).float().mean()
        print(f"{label:>36} {e.median():7.3f} {e.mean():7.3f} {within:6.2f} {within / reference:6.2f}")


if __name__ == "__main__":
    main()
