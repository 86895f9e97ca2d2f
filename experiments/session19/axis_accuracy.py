"""How well a model built with ``model.align_axis`` finds the object's axis, per category.

For each item of a split (first view), the angle between the estimated axis and the object's up
axis in the rig frame: signed (up told from down) and as a line (either sign).

    python experiments/session19/axis_accuracy.py --checkpoint RUN/model_best.pt --dataset DATA [--split test]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from stereo_occ.data.dataset import StereoOccupancyDataset
from stereo_occ.models.cameras import Cameras
from stereo_occ.training.checkpoint import load_model
from stereo_occ.training.trainer import object_axis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--up-axis", default="z")
    args = parser.parse_args()
    model, _ = load_model(args.checkpoint)
    model.eval()
    dataset = StereoOccupancyDataset(args.dataset, args.split, points_per_sample=1, views="first")
    rows: dict[str, list[float]] = {}
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            batch = {k: v[None] for k, v in item.items()}
            cond = model.encode(batch["left"], batch["right"], Cameras.from_batch(batch))
            estimate = torch.nn.functional.normalize(cond.axis[0], dim=0)
            cos = float((estimate * object_axis(batch["rotation"], args.up_axis)[0]).sum())
            rows.setdefault(dataset.item_categories()[i], []).append(cos)
    print(f"{'category':<10}{'items':>6}{'mean angle':>12}{'as a line':>11}{'line < 15 deg':>15}{'sign right':>12}")
    for category, cos in sorted(rows.items()):
        c = np.clip(np.array(cos), -1, 1)
        angle, line = np.degrees(np.arccos(c)), np.degrees(np.arccos(np.abs(c)))
        print(f"{category:<10}{len(c):>6}{angle.mean():>11.1f}°{line.mean():>10.1f}°{(line < 15).mean():>15.0%}"
              f"{(c > 0).mean():>12.0%}")


if __name__ == "__main__":
    main()
