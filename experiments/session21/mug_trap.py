"""Why the cosine never finds a mug's axis: the package's estimator trained on the mugs of the quick
dataset's training split alone, with the cosine or with the line (1 - cos^2), and measured on those
same training images every 100 steps (median angle as a direction and as a line, degrees).

    python experiments/session21/mug_trap.py --dataset runs/quick-s17/dataset --loss cos --no-aug
    python experiments/session21/mug_trap.py --dataset runs/quick-s17/dataset --loss line --no-aug
    python experiments/session21/mug_trap.py --dataset runs/quick-s17/dataset --loss line --steps 600

With the cosine the answers stay at right angles to the axis even on images it trains on, without any
augmentation: where the network cannot yet tell a mug's top from its bottom, the two ends pull equally
and the cosine's gradient vanishes for the line too. The line has no such trap.
"""
from __future__ import annotations

import argparse
import time

import torch

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.training.axis import AxisSamples, roll_and_mirror


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--category", default="mug", choices=CATEGORIES)
    p.add_argument("--loss", choices=["cos", "line"], default="cos")
    p.add_argument("--no-aug", action="store_true", help="no roll or mirror: the training images as they are")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    samples = AxisSamples.from_dataset(StereoOccupancyDataset(args.dataset, "train", points_per_sample=1), "z")
    keep = samples.categories == CATEGORIES.index(args.category)
    images, axes = samples.images[keep], samples.axes[keep]
    print(f"{len(axes)} {args.category} images, loss {args.loss}, {'no augmentation' if args.no_aug else 'rolled and mirrored'}")
    net = AxisEstimator()
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    start = time.time()
    for step in range(1, args.steps + 1):
        pick = torch.randint(len(axes), (64,), generator=generator)
        x, a = images[pick].float() / 255.0, axes[pick]
        if not args.no_aug:
            x, a = roll_and_mirror(x, a, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            estimate = net(x)
        cosine = (estimate.float() * a).sum(-1)
        loss = (1.0 - cosine).mean() if args.loss == "cos" else (1.0 - cosine.square()).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 0:
            with torch.no_grad():
                e = torch.cat([net(images[i:i + 256].float() / 255.0) for i in range(0, len(axes), 256)])
                angle = torch.rad2deg(torch.acos((e * axes).sum(-1).clamp(-1, 1)))
                line = torch.minimum(angle, 180 - angle)
            print(f"step {step:5d} {time.time() - start:5.0f} s  loss {loss.item():.3f}  on its training images: "
                  f"direction {angle.median():.0f}, line {line.median():.0f} degrees", flush=True)


if __name__ == "__main__":
    main()
