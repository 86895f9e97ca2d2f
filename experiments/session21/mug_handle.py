"""Can the estimator also find a mug's handle? The package's estimator with three more outputs, trained
on the quick dataset's training images with session 21's axis loss plus, on mugs, one minus the cosine
of the handle direction (made orthogonal to the true axis) to the true one; measured on one view of each
object of a dataset split (each image on its own, in its camera's frame).

    python experiments/session21/mug_handle.py --dataset runs/quick-s17/dataset --dev runs/s18/dev --steps 2000

Prints the axis's median angle (direction, line) per category, and for mugs the handle's: made
orthogonal to the estimated axis, and to the true axis (the handle alone).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.axis_estimator import AxisEstimator
from stereo_occ.training.axis import axis_loss, roll_and_mirror


def load(root: str, split: str, views: int):
    """Images, their (axis, handle) pairs in each camera's frame (B, 2, 3), categories."""
    dataset = StereoOccupancyDataset(root, split, points_per_sample=1)
    images, vectors, categories = [], [], []
    for obj, category in zip(dataset.objects, dataset.categories):
        for view in range(min(views, dataset.views_per_object)):
            rotation, _, world_to_cam = obj.cameras(view)
            for camera in range(2):
                turn = np.asarray(world_to_cam[camera], np.float64)[:3, :3]
                images.append(obj.image(view, camera).transpose(2, 0, 1).copy())
                vectors.append(np.stack([turn @ rotation[:, 2], turn @ rotation[:, 0]]))  # the handle points along +x
                categories.append(CATEGORIES.index(category))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(vectors)).float(), torch.tensor(categories)


class AxisAndHandle(AxisEstimator):
    def __init__(self) -> None:
        super().__init__()
        self.head[-1] = nn.Linear(256, 6)

    def forward(self, images):
        out = self.head(self.features(images)).float()
        return F.normalize(out[:, :3], dim=-1), out[:, 3:]


def orthogonal(h, a):
    return F.normalize(h - (h * a).sum(-1, keepdim=True) * a, dim=-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--dev-split", default="test")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--handle-weight", type=float, default=1.0)
    args = p.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images, vectors, categories = load(args.dataset, "train", 16)
    net = AxisAndHandle()
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)
    start = time.time()
    for step in range(1, args.steps + 1):
        pick = torch.randint(len(vectors), (64,), generator=generator)
        x, v = roll_and_mirror(images[pick].float() / 255.0, vectors[pick], generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            axis, handle = net(x)
        mug = (categories[pick] == CATEGORIES.index("mug")).float()
        handle_loss = ((1.0 - (orthogonal(handle.float(), v[:, 0]) * v[:, 1]).sum(-1)) * mug).sum() / mug.sum().clamp(min=1.0)
        loss = axis_loss(axis, v[:, 0], 0.5) + args.handle_weight * handle_loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 500 == 0:
            print(f"step {step} {time.time() - start:.0f} s loss {loss.item():.3f}", flush=True)
    images, vectors, categories = load(args.dev, args.dev_split, 1)
    with torch.no_grad():
        axis, handle = net(images.float() / 255.0)
    angle = torch.rad2deg(torch.acos((axis * vectors[:, 0]).sum(-1).clamp(-1, 1)))
    handle_est = torch.rad2deg(torch.acos((orthogonal(handle, axis) * vectors[:, 1]).sum(-1).clamp(-1, 1)))
    handle_true = torch.rad2deg(torch.acos((orthogonal(handle, vectors[:, 0]) * vectors[:, 1]).sum(-1).clamp(-1, 1)))
    for index, category in enumerate(CATEGORIES):
        k = categories == index
        line = torch.minimum(angle[k], 180 - angle[k])
        text = f"{category:<7} axis {angle[k].median():3.0f} (line {line.median():3.0f})"
        if category == "mug":
            text += f"  handle {handle_est[k].median():3.0f}, given the true axis {handle_true[k].median():3.0f}"
        print(text)


if __name__ == "__main__":
    main()
