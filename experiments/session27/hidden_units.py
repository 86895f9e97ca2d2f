"""Why a classifier estimator without a handle head did not learn: the share of the head's hidden
units active for some image of the batch, the loss, and how much the logits vary across images and
across bins, every 50 steps, for one variant of the estimator trained as `train-axis` trains it
(rolled and mirrored views of the training split, batch 64, Adam, bf16; no handle head).

    python experiments/session27/hidden_units.py --dataset runs/quick/dataset --variant old --steps 300

Variants: old (the head before session 27), norm (today's: layer norm before the ReLU), leaky (old
with a LeakyReLU), warm (old with a 200-step warm-up), zero (old with a zero last layer), category
(old plus a category head), vmf (old with the logits a mixture of four von Mises-Fisher components).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.training.axis import AxisSamples, bin_loss, roll_and_mirror

VARIANTS = ("old", "norm", "leaky", "warm", "zero", "category", "vmf")
COMPONENTS = 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--variant", choices=VARIANTS, default="old")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    samples = AxisSamples.from_dataset(StereoOccupancyDataset(args.dataset, "train", points_per_sample=1), "z", 16)
    net = AxisEstimator(image_size=int(samples.images.shape[-1]), head_norm=args.variant == "norm")
    if args.variant == "leaky":
        net.head[2] = nn.LeakyReLU(0.1)
    if args.variant == "zero":
        nn.init.zeros_(net.head[3].weight)
        nn.init.zeros_(net.head[3].bias)
    if args.variant == "vmf":
        net.head[3] = nn.Linear(256, COMPONENTS * 4)
    category = nn.Linear(256, 3)
    optimiser = torch.optim.Adam(list(net.parameters()) + list(category.parameters()), lr=args.lr)

    def logits(out: torch.Tensor) -> torch.Tensor:
        if args.variant != "vmf":
            return out.float()
        out = out.float().view(-1, COMPONENTS, 4)  # a weight and an unnormalised mean direction each
        return torch.logsumexp(out[..., :1] + out[..., 1:] @ net.directions.T, 1)

    for step in range(args.steps + 1):
        if args.variant == "warm":
            optimiser.param_groups[0]["lr"] = args.lr * min(1.0, (step + 1) / 200)
        pick = torch.randint(len(samples.axes), (64,), generator=generator)
        images, answers = roll_and_mirror(samples.images[pick].float() / 255.0, samples.answers(pick), generator)
        with torch.autocast("cpu", torch.bfloat16):
            hidden = net.head[:-1](net.features(images))
            raw = logits(net.head[-1](hidden))[:, None]
        loss = bin_loss(raw, answers, net.directions, 40.0, 1.0)
        if args.variant == "category":
            loss = loss + F.cross_entropy(category(hidden.float()), samples.categories[pick])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % 50 == 0:
            raw = raw.detach()
            alive = float((hidden.float() > 0).any(0).float().mean())
            print(f"step {step:4d}  loss {loss.item():.3f}  hidden units active {alive:.2f}  logits' spread across images "
                  f"{float(raw[:, 0].std(0).mean()):.3f}, across bins {float(raw[:, 0].std(1).mean()):.3f}", flush=True)


if __name__ == "__main__":
    main()
