"""Can a small CNN tell which end of a mug it sees at all? A yes/no classifier (does the mug's up axis
point away from the left camera, i.e. is that its base?) on the mug views that look at an end
(|cos| > 0.3), trained on 14 of the quick dataset's 18 training mugs and judged on the other 4, for
each input of stereo_sign.py: the left image, both images, the left image with its swept depth.

    python experiments/session26/sign_probe.py --dataset runs/quick/dataset

A yes/no answer has no two-peaked optimum to sit in, so this separates "the input does not show the
end" from "the 1,000-direction classifier does not learn it" (docs/training.md, "Session 26").
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_sign import VARIANTS, augment, estimator, pairs  # beside this script

STEPS, BATCH, LR, HELD_OUT = 1000, 64, 0.002, 4


class EndClassifier(nn.Module):
    """The estimator's convolutions and hidden layer, one logit: "this is the mug's base"."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        net = estimator(channels)
        self.features, self.hidden, self.out = net.features, net.head[:-1], nn.Linear(256, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(self.features(images)))[:, 0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    args = p.parse_args()
    data = StereoOccupancyDataset(args.dataset, "train", points_per_sample=1)
    images, axes, categories, seen = pairs(data)
    views = data.views_per_object
    mug = (categories == CATEGORIES.index("mug")).numpy()
    ends = mug & (abs(seen) > 0.3)
    mug_number = torch.cumsum(torch.from_numpy(mug[::views]), 0).repeat_interleave(views).numpy()  # 1..18 per mug view
    held_out = mug_number > mug_number[mug].max() - HELD_OUT
    train_idx = torch.from_numpy((ends & ~held_out).nonzero()[0])
    test_idx = torch.from_numpy((ends & held_out).nonzero()[0])
    results = {}
    for name, channels in VARIANTS.items():
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        net = EndClassifier(len(channels))
        optimiser = torch.optim.Adam(net.parameters(), lr=LR)
        for _ in tqdm(range(STEPS), desc=name, mininterval=2.0):
            pick = train_idx[torch.randint(len(train_idx), (BATCH,), generator=generator)]
            batch, answer = augment(images[pick].float() / 255.0, axes[pick], generator)
            with torch.autocast("cpu", torch.bfloat16):
                logit = net(batch[:, channels])
            loss = F.binary_cross_entropy_with_logits(logit.float(), (answer[:, 0, 2] > 0).float())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        net.eval()
        accuracy = {}
        with torch.no_grad():
            for split, idx in (("training mugs", train_idx), ("held-out mugs", test_idx)):
                logit = net(images[idx][:, channels].float() / 255.0)
                accuracy[split] = float(((logit > 0) == (axes[idx, 0, 0, 2] > 0)).float().mean())
        results[name] = accuracy
        print(f"{name:<32} " + "  ".join(f"{k} {v:.2f} ({len(train_idx) if k.startswith('training') else len(test_idx)} views)"
                                         for k, v in accuracy.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
