"""Does the second view tell a mug's top from its bottom? Two axis estimators trained alike, one on
the left image, one on both images of the pair (six channels), each answering in the left camera's
frame; then the share of mug views each turns upside down, on the training objects and new ones.

    python experiments/session26/stereo_sign.py --dataset runs/quick/dataset --dev runs/s18/dev --out runs/s26/stereo-sign

The package's estimator (one image, `stereo-occ train-axis`) leaves about a third of its own training
mugs upside down, a mug seen from its base at chance (experiments/session26/mug_sign.py): from one
64 px image a base with its recess and an opening look alike. A mug's cavity is as deep as the mug,
its base recess a few hundredths: a pair tells them apart by several pixels of disparity. Both
estimators here get the same samples (every view's pair), the same rolls (both images by the same
angle: the cameras rolled about their optical axes) and mirrors (both images flipped and swapped,
which is the pair of the mirrored object), the classifier's soft labels and 2,000 steps of 64.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.training.axis import TOWARDS_THE_CAMERA, bin_loss

KAPPA, STEPS, BATCH, LR = 40.0, 2000, 64, 0.002


def pairs(data: StereoOccupancyDataset):
    """Every view's pair ``(N, 6, H, W)`` uint8 and its answers in each camera's frame ``(N, 2, 2, 3)``
    (the up axis; a mug's handle, the direction towards the camera for the others, as the package's
    estimator is trained: without that second answer this classifier never leaves the uniform
    distribution in 300 steps), the categories, and the cosine between the up axis and the left
    camera's viewing direction."""
    images, axes, categories, seen = [], [], [], []
    for obj, category in zip(data.objects, data.categories):
        for view in range(data.views_per_object):
            rotation, _, world_to_cam = obj.cameras(view)
            up, handle = np.asarray(rotation, np.float64)[:, 2], np.asarray(rotation, np.float64)[:, 0]
            w2c = np.asarray(world_to_cam, np.float64)
            images.append(np.concatenate([obj.image(view, k).transpose(2, 0, 1) for k in range(2)]))
            axes.append(np.stack([np.stack([w2c[k, :3, :3] @ up, w2c[k, :3, :3] @ handle if category == "mug"
                                            else np.array(TOWARDS_THE_CAMERA)]) for k in range(2)]))
            categories.append(CATEGORIES.index(category))
            seen.append(float(up @ w2c[0, 2, :3]))
    return (torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(axes)).float(), torch.tensor(categories),
            np.array(seen))


def augment(images: torch.Tensor, axes: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Float pairs ``(B, 6, H, W)`` and the left camera's answers ``(B, 2, 3)``: half the pairs mirrored (both
    images flipped and swapped; the answer is the right camera's, x negated), then both images rolled
    by one random angle about their centres (the answer turned by it about z)."""
    b = images.shape[0]
    mirror = torch.rand(b, generator=generator) < 0.5
    swapped = torch.cat([images[:, 3:], images[:, :3]], 1).flip(-1)
    images = torch.where(mirror[:, None, None, None], swapped, images)
    answer = torch.where(mirror[:, None, None], axes[:, 1] * torch.tensor([-1.0, 1.0, 1.0]), axes[:, 0])
    phi = torch.rand(b, generator=generator) * (2 * math.pi)
    c, s = torch.cos(phi), torch.sin(phi)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, s, -s, c
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images - 1.0, grid, align_corners=False) + 1.0
    c, s = c[:, None], s[:, None]
    answer = torch.stack([c * answer[..., 0] - s * answer[..., 1], s * answer[..., 0] + c * answer[..., 1], answer[..., 2]], -1)
    return images, answer


def estimator(channels: int) -> AxisEstimator:
    net = AxisEstimator(width=32, image_size=64, handle=True)
    first = net.features[0]
    net.features[0] = nn.Conv2d(channels, first.out_channels, 3, stride=2, padding=1)
    return net


def train(channels: int, images: torch.Tensor, axes: torch.Tensor, seed: int = 0) -> tuple[AxisEstimator, float]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = estimator(channels)
    optimiser = torch.optim.Adam(net.parameters(), lr=LR)
    start = time.time()
    for _ in tqdm(range(STEPS), desc=f"{channels // 3} image(s)", mininterval=2.0):
        pick = torch.randint(len(images), (BATCH,), generator=generator)
        batch, answer = augment(images[pick].float() / 255.0, axes[pick], generator)
        with torch.autocast("cpu", torch.bfloat16):
            raw = net.raw(batch[:, :channels])
        loss = bin_loss(raw, answer, net.directions, KAPPA, 1.0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return net.eval(), time.time() - start


@torch.no_grad()
def report(net: AxisEstimator, channels: int, images, axes, categories, seen) -> dict:
    answers = torch.cat([net(images[i:i + 256, :channels].float() / 255.0)[:, 0] for i in range(0, len(images), 256)])
    angles = torch.rad2deg(torch.acos((answers * axes[:, 0, 0]).sum(-1).clamp(-1, 1))).numpy()
    out = {c: float(np.median(angles[categories.numpy() == i])) for i, c in enumerate(CATEGORIES)}
    mugs = categories.numpy() == CATEGORIES.index("mug")
    out["mug upside down"] = float(np.mean(angles[mugs] > 90))
    out["mug seen from its base, upside down"] = float(np.mean(angles[mugs & (seen > 0.5)] > 90))
    out["mug seen into, upside down"] = float(np.mean(angles[mugs & (seen < -0.5)] > 90))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--dev", required=True, help="another dataset; its test split is judged")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train_set = pairs(StereoOccupancyDataset(args.dataset, "train", points_per_sample=1))
    dev_set = pairs(StereoOccupancyDataset(args.dev, "test", points_per_sample=1))
    results = {}
    for channels, name in ((3, "left image"), (6, "both images")):
        net, seconds = train(channels, train_set[0], train_set[1])
        torch.save(net.state_dict(), args.out / f"{channels}ch.pt")
        results[name] = {"seconds": seconds, "train": report(net, channels, *train_set), "dev": report(net, channels, *dev_set)}
        print(name, json.dumps(results[name], indent=1))
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
