"""Which end of a mug does the left camera see? A yes/no probe ("this is the mug's base") on the
training mug views that look at an end (|cos| > 0.3 between the up axis and the viewing direction),
trained on 14 of the quick dataset's 18 training mugs and judged on the other 4, for one network and
its training settings at a time. Session 26's probe (experiments/session26/sign_probe.py) fitted even
its training mugs at 59-68% only, with the estimator's convolutions; a person tells most of these
views apart at a glance (the cavity and rim against a flat disc), so this asks whether another
trunk or other settings learn it.

    python experiments/session27/end_probe.py --dataset runs/quick/dataset --trunk estimator --lr 2e-3

``--more-mugs DATASET`` adds the training mugs of another dataset (e.g. 216 procedural mugs of
another seed) to the 14; it is also judged on the quick dataset's 10 test-split mugs.

Trunks: estimator (the axis estimator's convolutions and hidden layer, flattened 2x2 map),
estimator-mean (the same, its last map averaged over positions, which no roll of the image changes),
estimator-bn (the estimator's with BatchNorm instead of GroupNorm), resnet18 (the package's
ResNet-18, BatchNorm, global average pool).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.models.resnet import ResNet18
from stereo_occ.training.axis import roll_and_mirror

HELD_OUT = 4


def mug_end_views(data: StereoOccupancyDataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left images ``(N, 3, H, W)`` uint8 of the mug views that look at an end, whether it is the base
    (``(N,)`` bool), and each view's mug number (0..)."""
    images, base, mug = [], [], []
    number = -1
    for obj, category in zip(data.objects, data.categories):
        if category != "mug":
            continue
        number += 1
        for view in range(data.views_per_object):
            rotation, _, world_to_cam = obj.cameras(view)
            up = np.asarray(world_to_cam, np.float64)[0, :3, :3] @ np.asarray(rotation, np.float64)[:, 2]
            if abs(up[2]) > 0.3:
                images.append(obj.image(view, 0).transpose(2, 0, 1))
                base.append(up[2] > 0)  # the axis points away from the camera: it sees the base
                mug.append(number)
    return torch.from_numpy(np.stack(images)), torch.tensor(base), torch.tensor(mug)


class Probe(nn.Module):
    def __init__(self, trunk: str) -> None:
        super().__init__()
        self.trunk = trunk
        if trunk == "resnet18":
            self.net = ResNet18(num_classes=None)
            self.out = nn.Linear(512, 1)
        else:
            estimator = AxisEstimator(image_size=64)
            if trunk == "estimator-bn":
                for i, layer in enumerate(estimator.features):
                    if isinstance(layer, nn.GroupNorm):
                        estimator.features[i] = nn.BatchNorm2d(layer.num_channels)
            self.features, self.hidden = estimator.features, estimator.head[:-1]
            if trunk == "estimator-mean":
                width = estimator.head[1].in_features // 4
                self.hidden = nn.Sequential(nn.Linear(width, 256), *estimator.head[2:-1])
            self.out = nn.Linear(256, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.trunk == "resnet18":
            return self.out(self.net.forward_features(images).mean((2, 3)))[:, 0]
        features = self.features(images)
        if self.trunk == "estimator-mean":
            features = features.mean((2, 3))
        return self.out(self.hidden(features))[:, 0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--trunk", choices=("estimator", "estimator-mean", "estimator-bn", "resnet18"), default="estimator")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--no-roll", action="store_true", help="mirror only: the images keep their orientation")
    p.add_argument("--warmup", type=int, default=0, help="steps of a linear learning-rate warm-up")
    p.add_argument("--more-mugs", default="", help="a dataset whose training mugs are added to the probe's")
    args = p.parse_args()
    images, base, mug = mug_end_views(StereoOccupancyDataset(args.dataset, "train", points_per_sample=1))
    held_out = mug >= int(mug.max()) + 1 - HELD_OUT
    train_idx, test_idx = (~held_out).nonzero()[:, 0], held_out.nonzero()[:, 0]
    judged = [("training mugs", train_idx), ("held-out mugs", test_idx)]
    test_images, test_base, _ = mug_end_views(StereoOccupancyDataset(args.dataset, "test", points_per_sample=1))
    if args.more_mugs:
        more_images, more_base, _ = mug_end_views(StereoOccupancyDataset(args.more_mugs, "train", points_per_sample=1))
        train_idx = torch.cat([train_idx, torch.arange(len(more_images)) + len(images)])
        images, base = torch.cat([images, more_images]), torch.cat([base, more_base])
    offset = len(images)
    images, base = torch.cat([images, test_images]), torch.cat([base, test_base])
    judged.append(("test-split mugs", torch.arange(len(test_images)) + offset))
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    net = Probe(args.trunk)
    optimiser = torch.optim.Adam(net.parameters(), lr=args.lr)
    start = time.time()
    for step in tqdm(range(args.steps), desc=args.trunk, mininterval=2.0):
        if args.warmup:
            optimiser.param_groups[0]["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        pick = train_idx[torch.randint(len(train_idx), (64,), generator=generator)]
        batch = images[pick].float() / 255.0
        if args.no_roll:
            batch = torch.where((torch.rand(len(pick), generator=generator) < 0.5)[:, None, None, None], batch.flip(-1), batch)
        else:
            batch, _ = roll_and_mirror(batch, torch.zeros(len(pick), 3), generator)
        with torch.autocast("cpu", torch.bfloat16):
            logit = net(batch)
        loss = F.binary_cross_entropy_with_logits(logit.float(), base[pick].float())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    net.eval()
    result = {"trunk": args.trunk, "lr": args.lr, "steps": args.steps, "roll": not args.no_roll, "warmup": args.warmup,
              "more mugs": args.more_mugs, "training views": len(train_idx), "seconds": round(time.time() - start)}
    with torch.no_grad():
        for split, idx in judged:
            logit = torch.cat([net(images[chunk].float() / 255.0) for chunk in idx.split(256)])
            result[split] = round(float(((logit > 0) == base[idx]).float().mean()), 3)
            result[split + " views"] = len(idx)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
