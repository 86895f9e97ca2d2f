"""How well can a small, separate CNN learn the object's axis from one view, in a few CPU minutes?

Each image of the training split is one sample (left and right views alike): the target is the
object's up axis in that camera's frame. Augmented by rolling the camera about its optical axis (the
image turned about its centre, the target turned about z) and mirroring (x negated). At evaluation
the estimates of the two views are brought into the rig frame and averaged. Prints the median angle
per category, as a direction and as a line, against training seconds.

    python experiments/session20/axis_net.py --dataset runs/quick-s17/dataset --dev runs/s18/dev --seconds 240
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.config import CATEGORIES


def load(root: str, split: str, up: int = 2, with_keys: bool = True):
    ds = StereoOccupancyDataset(root, split, points_per_sample=1)
    images, axes, rig_axes, cams, cats = [], [], [], [], []
    for i in range(len(ds)):
        it = ds[i]
        a_rig = it["rotation"][:, up]
        images.append(torch.stack([it["left"], it["right"]]))
        x_rig = it["rotation"][:, 0]  # a mug's handle direction
        axes.append(torch.stack([torch.cat([it["world_to_cam"][v, :3, :3] @ a_rig, it["world_to_cam"][v, :3, :3] @ x_rig]) for v in range(2)]))
        rig_axes.append(a_rig)
        cams.append(it["world_to_cam"][:, :3, :3])
        cats.append(int(it["category"]))
    keys = [f"{Path(ds.objects[i // ds.views_per_object].folder).resolve()}:{int(ds[i]['view'])}" for i in range(len(ds))] if with_keys else None
    out = torch.stack(images), torch.stack(axes), torch.stack(rig_axes), torch.stack(cams), torch.tensor(cats)
    return out + (keys,) if with_keys else out


class AxisNet(nn.Module):
    def __init__(self, width: int = 32, outputs: int = 3):
        super().__init__()
        c = [3, width, 2 * width, 4 * width, 4 * width, 8 * width]
        layers = []
        for i in range(5):  # 64 -> 32 -> 16 -> 8 -> 4 -> 2
            layers += [nn.Conv2d(c[i], c[i + 1], 3, stride=2, padding=1), nn.GroupNorm(8, c[i + 1]), nn.ReLU(inplace=True),
                       nn.Conv2d(c[i + 1], c[i + 1], 3, padding=1), nn.GroupNorm(8, c[i + 1]), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c[-1] * 4, 256), nn.ReLU(inplace=True), nn.Linear(256, outputs))

    def forward(self, x):
        """-> the unit axis (B, 3) and, with 6 outputs, a unit vector orthogonal to it (the handle)."""
        out = self.head(self.features(x)).float()
        z = F.normalize(out[:, :3], dim=-1)
        if out.shape[1] == 3:
            return z
        x = out[:, 3:]
        return torch.cat([z, F.normalize(x - (x * z).sum(-1, keepdim=True) * z, dim=-1)], -1)


def roll(images: torch.Tensor, axes: torch.Tensor, gen: torch.Generator):
    """Turn each image about its centre by a random angle and mirror half of them; the axes follow."""
    b = images.shape[0]
    phi = torch.rand(b, generator=gen) * 2 * math.pi
    c, s = torch.cos(phi), torch.sin(phi)
    # the camera rolled by phi: a point's image coordinates turn by phi; grid_sample reads the source
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c, s, -s, c
    grid = F.affine_grid(theta, images.shape, align_corners=False)
    out = F.grid_sample(images - 1.0, grid, align_corners=False, padding_mode="zeros") + 1.0  # white outside
    v = axes.reshape(b, -1, 3)
    ax = v.clone()
    ax[..., 0], ax[..., 1] = c[:, None] * v[..., 0] - s[:, None] * v[..., 1], s[:, None] * v[..., 0] + c[:, None] * v[..., 1]
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    ax[flip, :, 0] = -ax[flip, :, 0]
    return out, ax.reshape(b, -1)


def evaluate(net, images, rig_axes, cams, cats):
    net.eval()
    with torch.no_grad():
        est = []
        for v in range(2):
            a_cam = torch.cat([net(images[i:i + 256, v])[:, :3] for i in range(0, len(images), 256)])
            est.append((a_cam[:, None, :] @ cams[:, v])[:, 0])  # R^T a
        left = est[0]
        agree = torch.sign((est[0] * est[1]).sum(-1, keepdim=True)).clamp(min=0) * 2 - 1
        both = F.normalize(est[0] + est[1], dim=-1)
    net.train()
    out = {}
    for name, e in (("left", left), ("both", both)):
        cos = (e * rig_axes).sum(-1).clamp(-1, 1)
        ang = torch.rad2deg(torch.acos(cos))
        line = torch.rad2deg(torch.acos(cos.abs()))
        out[name] = {CATEGORIES[k]: (float(ang[cats == k].median()), float(line[cats == k].median()),
                                     float((ang[cats == k] < 20).float().mean())) for k in range(3)}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--seconds", type=float, default=240)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--loss", choices=["cos", "line"], default="cos")
    p.add_argument("--no-aug", action="store_true")
    p.add_argument("--mug-pose", action="store_true", help="also learn a mug's handle direction")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps instead (0: --seconds)")
    p.add_argument("--save", default="", help="write each training and development view's estimate (rig frame) here, .npz")
    args = p.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    tr = load(args.dataset, "train")
    tr_images, tr_axes = tr[0].flatten(0, 1), tr[1].flatten(0, 1)
    seen = torch.arange(0, len(tr[0]), 16)  # one view of each training object, to compare with
    dv = load(args.dev, "test")
    dv_images, _, dv_rig, dv_cams, dv_cats, _ = dv
    print(f"{len(tr_images)} training images, {len(dv_images)} development pairs", flush=True)
    net = AxisNet(args.width, 6 if args.mug_pose else 3)
    mug = CATEGORIES.index("mug")
    tr_cats = tr[4].repeat_interleave(2)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    start, step, next_eval = time.perf_counter(), 0, 30.0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= next_eval or elapsed >= args.seconds:
            r = evaluate(net, dv_images, dv_rig, dv_cams, dv_cats)
            rt = evaluate(net, tr[0][seen], tr[2][seen], tr[3][seen], tr[4][seen])
            print(f"{elapsed:6.0f}s step {step:5d}  " + "  ".join(
                f"{v}: " + " ".join(f"{c} {a:4.0f}/{l:3.0f}/{h:.2f}" for c, (a, l, h) in r[v].items()) for v in r)
                + "  | train both: " + " ".join(f"{c} {a:4.0f}/{l:3.0f}" for c, (a, l, h) in rt["both"].items()), flush=True)
            next_eval += 30.0
            if elapsed >= args.seconds:
                break
        if args.steps and step >= args.steps:
            break
        idx = torch.randint(len(tr_images), (args.batch,), generator=gen)
        x, t, is_mug = tr_images[idx], tr_axes[idx], (tr_cats[idx] == mug).float()
        if not args.no_aug:
            x, t = roll(x, t, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            a = net(x)
        cos = (a[:, :3] * t[:, :3]).sum(-1)
        loss = (1 - cos).mean() if args.loss == "cos" else (1 - cos ** 2).mean()
        if args.mug_pose:
            loss = loss + (is_mug * (1 - (a[:, 3:] * t[:, 3:]).sum(-1))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    if args.save:
        save_estimates(net, {"train": (args.dataset, tr), "val": (args.dataset, load(args.dataset, "val")),
                             "test": (args.dataset, load(args.dataset, "test")), "dev": (args.dev, dv)}, args.save)


def save_estimates(net, sets, path):
    """Per split: the rig-frame estimates from the left view alone and from both views, (N, 3) each,
    in the dataset's item order (object-major, views within), with the items' object folders."""
    net.eval()
    out = {}
    with torch.no_grad():
        for name, (root, (images, _, _, cams, _, keys)) in sets.items():
            est = []
            for v in range(2):
                a_cam = torch.cat([net(images[i:i + 256, v])[:, :3] for i in range(0, len(images), 256)])
                est.append((a_cam[:, None, :] @ cams[:, v])[:, 0])
            out[f"{name}_left"] = est[0].numpy()
            out[f"{name}_both"] = F.normalize(est[0] + est[1], dim=-1).numpy()
            out[f"{name}_keys"] = np.array(keys)
    np.savez(path, **out)
    print("wrote", path)


if __name__ == "__main__":
    main()
