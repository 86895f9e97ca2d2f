"""The network's volumetric IoU per category at every threshold, for several checkpoints on one split.

A loss that moves the probabilities also moves the threshold that validation picks, and 6 val objects
pick it coarsely. This separates the two: each run's IoU on the test split at every threshold, its
best, and the one its validation chose (first view of each object, all uniform points, as
``stereo-occ evaluate`` measures it).

    python experiments/session15/thresholds.py --dataset runs/quick/dataset \
        baseline=runs/quick/runs/rig-stereo/model_best.pt variant=runs/v/NAME/model_best.pt
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stereo_occ.config import CATEGORIES
from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.evaluation.evaluate import ObjectTruth, decode_probs, encode_pair
from stereo_occ.evaluation.metrics import iou
from stereo_occ.evaluation.threshold import THRESHOLDS
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.checkpoint import load_model


def table(checkpoint: str, dataset: str, split: str) -> tuple[dict, float]:
    """({category: IoU per threshold}, the checkpoint's own threshold)."""
    model, cfg = load_model(checkpoint, device="cpu")
    data = StereoOccupancyDataset(dataset, split, points_per_sample=1, uniform_only=True, views="first")
    rows: dict[str, list[np.ndarray]] = {c: [] for c in CATEGORIES}
    for index in range(len(data.objects)):
        truth = ObjectTruth.from_object(data.objects[index], cfg.eval, seed=index)
        item = data[index]
        rotation = item["rotation"].numpy().astype(np.float64)
        code = encode_pair(model, item["left"], item["right"], Cameras.from_batch(item))
        probs = decode_probs(model, code, truth.points @ rotation.T, cfg.eval.batch_points)
        rows[data.categories[index]].append(np.array([iou(probs >= t, truth.occupied) for t in THRESHOLDS]))
    return {c: np.mean(v, 0) for c, v in rows.items() if v}, cfg.eval.threshold


def at(per_category: dict, index: int) -> str:
    """Each category's IoU at threshold ``THRESHOLDS[index]``."""
    return " ".join(f"{c} {v[index]:.3f}" for c, v in per_category.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("runs", nargs="+", help="LABEL=CHECKPOINT")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    for spec in args.runs:
        label, checkpoint = spec.split("=", 1)
        per_category, chosen = table(checkpoint, args.dataset, args.split)
        mean = np.mean(list(per_category.values()), 0)
        best = int(np.argmax(mean))
        chosen_index = int(np.argmin([abs(t - chosen) for t in THRESHOLDS]))
        print(f"{label}: chosen {chosen:.2f}: {mean[chosen_index]:.3f} ({at(per_category, chosen_index)}); "
              f"best {THRESHOLDS[best]:.2f}: {mean[best]:.3f} ({at(per_category, best)})")
        for c, v in per_category.items():
            print(f"    {c:6s} best {THRESHOLDS[int(np.argmax(v))]:.2f}: {v.max():.3f}")


if __name__ == "__main__":
    main()
