"""Can a model trained in axis-aligned frames find the axis itself at test time, by trying frames?

A model trained with ``oracle-frame.patch`` (``STEREO_OCC_ORACLE=axis``: the network works in a frame
whose z axis is the object's up axis, tilted by ``STEREO_OCC_ORACLE_TILT`` degrees) cannot be
evaluated without the true axis. This script gives it none: for each test item it encodes the pair in
the frames of ``--candidates`` axes spread over the sphere, scores each frame by how sure the network
is there (the mean binary entropy of its occupancy on probe points: a frame it was trained on should
give sharper walls than a wrong one), keeps the surest, and measures the IoU in it, beside the IoU in
the frame of the true axis and in the rig's own frame.

    python experiments/session19/axis_search.py --checkpoint RUN/model_best.pt --dataset DATA [--candidates 128]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.metrics import probability_iou
from stereo_occ.models.cameras import Cameras
from stereo_occ.models.rig_volume import axis_frame
from stereo_occ.training.checkpoint import load_checkpoint, load_model


def sphere_directions(n: int) -> torch.Tensor:
    """``(n, 3)`` unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * i / n
    r = torch.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1).float()


@torch.inference_mode()
def probabilities(model, item: dict, frames: torch.Tensor, points_rig: torch.Tensor) -> torch.Tensor:
    """``(F, N)`` occupancy of rig-frame points with the network working in each of ``frames``."""
    n = len(frames)
    to_rig = torch.eye(4).repeat(n, 1, 1)
    to_rig[:, :3, :3] = frames.transpose(1, 2)  # frame coordinates q -> rig p = F^T q
    world_to_cam = item["world_to_cam"][None].double() @ to_rig[:, None].double()
    cameras = Cameras.from_arrays(item["K"][None].expand(n, -1, -1, -1), world_to_cam.float(), item["left"].shape[-1])
    cond = model.encode(item["left"][None].expand(n, -1, -1, -1), item["right"][None].expand(n, -1, -1, -1), cameras)
    q = points_rig[None].expand(n, -1, -1) @ frames.transpose(1, 2)
    return torch.sigmoid(model.decode(q, cond).float())


def entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log()).mean(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--candidates", type=int, default=128)
    parser.add_argument("--probe-points", type=int, default=4096)
    parser.add_argument("--iou-points", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, _ = load_model(args.checkpoint)
    threshold = float(load_checkpoint(args.checkpoint)["threshold"])
    dataset = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1, views="first")
    candidates = sphere_directions(args.candidates)
    rows = []
    for i in tqdm(range(len(dataset)), desc="items"):
        item = dataset[i]
        obj = dataset.objects[i]
        rotation = item["rotation"].double()
        truth_axis = rotation[:, 2].float()
        n = min(args.iou_points, obj.n_uniform)
        points = torch.from_numpy(np.asarray(obj.points()[:n], dtype=np.float32)) @ rotation.float().T  # rig frame
        occupied = np.asarray(obj.occupancies()[:n], dtype=bool)
        probe = points[torch.randperm(n)[: args.probe_points]]
        scores = torch.cat([entropy(probabilities(model, item, axis_frame(c), probe))
                            for c in candidates.split(32)])
        best = candidates[int(scores.argmin())]
        frames = axis_frame(torch.stack([best, truth_axis]))
        iou = {}
        for name, frame in (("searched", frames[0]), ("true axis", frames[1]), ("rig frame", torch.eye(3))):
            probs = torch.cat([probabilities(model, item, frame[None], chunk)[0] for chunk in points.split(50_000)])
            iou[name] = probability_iou(probs.numpy(), occupied, threshold)
        angle = float(torch.rad2deg(torch.arccos((best * truth_axis).sum().clamp(-1, 1))))
        rows.append({"object_id": dataset.object_ids[i], "category": dataset.item_categories()[i], "angle": angle, **iou})
    print(f"{'category':<9}{'items':>6}{'angle':>8}{'< 20 deg':>10}{'searched':>10}{'true axis':>11}{'rig frame':>11}")
    for category in sorted({r["category"] for r in rows}) + ["mean"]:
        sel = rows if category == "mean" else [r for r in rows if r["category"] == category]
        mean = lambda key: float(np.mean([r[key] for r in sel]))  # noqa: E731
        close = float(np.mean([r["angle"] < 20 for r in sel]))
        print(f"{category:<9}{len(sel):>6}{mean('angle'):>7.1f}°{close:>10.0%}{mean('searched'):>10.3f}"
              f"{mean('true axis'):>11.3f}{mean('rig frame'):>11.3f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
