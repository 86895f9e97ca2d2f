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

A third estimator sees the left image and a depth map swept from the pair (``--variants``): the
matching built in rather than learnt. For every pixel of the reference image, 48 planes parallel to
it across the sphere an object lies in, each projected into the other camera with the rig's K and
world_to_cam, the 3x3 sum of squared RGB differences, the best plane's depth (as
bench/bench_matching_signal.py does it). A mirrored pair takes the right image's own sweep.
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
from stereo_occ.data.rig import OBJECT_RADIUS
from stereo_occ.models.cameras import Cameras
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.training.axis import TOWARDS_THE_CAMERA, bin_loss

KAPPA, STEPS, BATCH, LR = 40.0, 2000, 64, 0.002
PLANES = 48
VARIANTS = {  # the channels each estimator sees: left RGB 0-2, right RGB 3-5, swept depth of the left 6 (of the right 7)
    "left image": [0, 1, 2],
    "both images": [0, 1, 2, 3, 4, 5],
    "left image and its swept depth": [0, 1, 2, 6],
}
FILL = torch.tensor([1.0] * 6 + [0.5] * 2)  # white images, a depth code at the object's centre


def pairs(data: StereoOccupancyDataset):
    """Every view's pair ``(N, 6, H, W)`` uint8 and its answers in each camera's frame ``(N, 2, 2, 3)``
    (the up axis; a mug's handle, the direction towards the camera for the others, as the package's
    estimator is trained: without that second answer this classifier never leaves the uniform
    distribution in 300 steps), the categories, and the cosine between the up axis and the left
    camera's viewing direction."""
    images, axes, categories, seen = [], [], [], []
    K = w2c = None
    for obj, category in zip(data.objects, data.categories):
        for view in range(data.views_per_object):
            rotation, K_view, world_to_cam = obj.cameras(view)
            up, handle = np.asarray(rotation, np.float64)[:, 2], np.asarray(rotation, np.float64)[:, 0]
            w2c = np.asarray(world_to_cam, np.float64)
            K = np.asarray(K_view, np.float64)
            images.append(np.concatenate([obj.image(view, k).transpose(2, 0, 1) for k in range(2)]))
            axes.append(np.stack([np.stack([w2c[k, :3, :3] @ up, w2c[k, :3, :3] @ handle if category == "mug"
                                            else np.array(TOWARDS_THE_CAMERA)]) for k in range(2)]))
            categories.append(CATEGORIES.index(category))
            seen.append(float(up @ w2c[0, 2, :3]))
    images = torch.from_numpy(np.stack(images))
    depth = [swept_depth(images[:, 3 * ref:3 * ref + 3], images[:, 3 * (1 - ref):3 * (1 - ref) + 3], K, w2c, ref) for ref in (0, 1)]
    return (torch.cat([images, *depth], 1), torch.from_numpy(np.stack(axes)).float(), torch.tensor(categories),
            np.array(seen))


@torch.no_grad()
def swept_depth(reference: torch.Tensor, other: torch.Tensor, K: np.ndarray, w2c: np.ndarray, ref: int) -> torch.Tensor:
    """``(N, 1, H, W)`` uint8: each reference pixel's best plane (0: nearest the camera... 255:
    farthest), from the 3x3 SSD of RGB against the other image (every view of a dataset shares the rig)."""
    n, _, h, w = reference.shape
    cameras = Cameras.from_arrays(K, w2c, w)
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    rays = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3) @ torch.linalg.inv(cameras.K[0, ref]).T
    rotation, t = cameras.world_to_cam[0, ref, :3, :3], cameras.world_to_cam[0, ref, :3, 3]
    depths = t[2] + torch.linspace(-OBJECT_RADIUS, OBJECT_RADIUS, PLANES)
    points = ((depths[:, None, None] * rays[None]) - t) @ rotation  # (D, HW, 3) in the rig frame
    pixels, _ = cameras.project(points.reshape(1, -1, 3), 1 - ref)
    grid = cameras.grid(pixels).reshape(PLANES, h, w, 2)
    ref_images, other_images = reference.float() / 255.0, other.float() / 255.0
    best_cost = torch.full((n, h, w), float("inf"))
    best = torch.zeros(n, h, w, dtype=torch.uint8)
    for d in range(PLANES):
        seen = F.grid_sample(other_images - 1.0, grid[d].expand(n, -1, -1, -1), align_corners=False) + 1.0
        cost = F.avg_pool2d(((seen - ref_images) ** 2).sum(1, keepdim=True), 3, stride=1, padding=1,
                            count_include_pad=False)[:, 0]
        better = cost < best_cost
        best_cost = torch.where(better, cost, best_cost)
        best[better] = round(255 * d / (PLANES - 1))
    return best[:, None]


def augment(images: torch.Tensor, axes: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Float pairs ``(B, 8, H, W)`` (RGB left, right, swept depth left, right) and the left camera's answers ``(B, 2, 3)``: half the pairs mirrored (both
    images flipped and swapped; the answer is the right camera's, x negated), then both images rolled
    by one random angle about their centres (the answer turned by it about z)."""
    b = images.shape[0]
    mirror = torch.rand(b, generator=generator) < 0.5
    swapped = torch.cat([images[:, 3:6], images[:, :3], images[:, 7:8], images[:, 6:7]], 1).flip(-1)
    images = torch.where(mirror[:, None, None, None], swapped, images)
    answer = torch.where(mirror[:, None, None], axes[:, 1] * torch.tensor([-1.0, 1.0, 1.0]), axes[:, 0])
    phi = torch.rand(b, generator=generator) * (2 * math.pi)
    c, s = torch.cos(phi), torch.sin(phi)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, s, -s, c
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    fill = FILL[:, None, None]
    images = F.grid_sample(images - fill, grid, align_corners=False) + fill
    c, s = c[:, None], s[:, None]
    answer = torch.stack([c * answer[..., 0] - s * answer[..., 1], s * answer[..., 0] + c * answer[..., 1], answer[..., 2]], -1)
    return images, answer


def estimator(channels: int) -> AxisEstimator:
    net = AxisEstimator(width=32, image_size=64, handle=True)
    first = net.features[0]
    net.features[0] = nn.Conv2d(channels, first.out_channels, 3, stride=2, padding=1)
    return net


def train(channels: list[int], images: torch.Tensor, axes: torch.Tensor, seed: int = 0) -> tuple[AxisEstimator, float]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = estimator(len(channels))
    optimiser = torch.optim.Adam(net.parameters(), lr=LR)
    start = time.time()
    for _ in tqdm(range(STEPS), desc=f"{len(channels)} channels", mininterval=2.0):
        pick = torch.randint(len(images), (BATCH,), generator=generator)
        batch, answer = augment(images[pick].float() / 255.0, axes[pick], generator)
        with torch.autocast("cpu", torch.bfloat16):
            raw = net.raw(batch[:, channels])
        loss = bin_loss(raw, answer, net.directions, KAPPA, 1.0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return net.eval(), time.time() - start


@torch.no_grad()
def report(net: AxisEstimator, channels: list[int], images, axes, categories, seen) -> dict:
    answers = torch.cat([net(images[i:i + 256, channels].float() / 255.0)[:, 0] for i in range(0, len(images), 256)])
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
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train_set = pairs(StereoOccupancyDataset(args.dataset, "train", points_per_sample=1))
    dev_set = pairs(StereoOccupancyDataset(args.dev, "test", points_per_sample=1))
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in args.variants.split(","):
        channels = VARIANTS[name]
        net, seconds = train(channels, train_set[0], train_set[1])
        torch.save(net.state_dict(), args.out / f"{name.replace(' ', '-')}.pt")
        results[name] = {"seconds": seconds, "train": report(net, channels, *train_set), "dev": report(net, channels, *dev_set)}
        print(name, json.dumps(results[name], indent=1))
        results_file.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
