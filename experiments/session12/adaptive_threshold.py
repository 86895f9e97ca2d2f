"""A threshold per test object from the model's own expected IoU, against the one chosen on validation.

    python experiments/session12/adaptive_threshold.py CHECKPOINT DATASET [--split test]

For each object (its first view), the probabilities p of its uniform evaluation points are sorted and
the set kept is the one that maximises the expected IoU under the model's own probabilities,
``sum(p, kept) / (len(kept) + sum(p, rest))``. No label is used to choose it. If the model were
calibrated this would be the IoU-optimal decision for each object; the script prints the IoU at
both thresholds per category.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from stereo_occ.evaluation.evaluate import ObjectTruth, _Evaluator, decode_probs, encode_pair
from stereo_occ.models.cameras import Cameras


def expected_iou_threshold(probs: np.ndarray) -> float:
    """The probability above which points are kept, so as to maximise the expected IoU."""
    ranked = np.sort(probs)[::-1]
    kept_mass = np.cumsum(ranked)
    kept = np.arange(1, len(ranked) + 1)
    expected = kept_mass / (kept + kept_mass[-1] - kept_mass)
    return float(ranked[int(np.argmax(expected))])


def iou(predicted: np.ndarray, occupied: np.ndarray) -> float:
    return float((predicted & occupied).sum() / max(1, (predicted | occupied).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("dataset")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    evaluator = _Evaluator(args.checkpoint, args.dataset, args.split, None, None)
    threshold = evaluator.eval_cfg.threshold
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with torch.inference_mode():
        for i, category in enumerate(evaluator.data.categories):
            truth = ObjectTruth.from_object(evaluator.data.objects[i], evaluator.eval_cfg, seed=i)
            item = evaluator.data[i * evaluator.per_view]
            code = encode_pair(evaluator.model, item["left"], item["right"], Cameras.from_batch(item))
            rotation = item["rotation"].numpy().astype(np.float64)
            probs = decode_probs(evaluator.model, code, truth.points @ rotation.T, evaluator.eval_cfg.batch_points)
            own = expected_iou_threshold(probs)
            rows[category].append((iou(probs >= threshold, truth.occupied), iou(probs >= own, truth.occupied), own))
    print(f"validation threshold {threshold:.2f}")
    for category, values in rows.items():
        v = np.array(values)
        print(f"{category:6s} at it {v[:, 0].mean():.3f}, per object {v[:, 1].mean():.3f} "
              f"(thresholds {v[:, 2].min():.2f} to {v[:, 2].max():.2f})")
    v = np.array([r for values in rows.values() for r in values])
    print(f"mean   at it {v[:, 0].mean():.4f}, per object {v[:, 1].mean():.4f} "
          f"({int((v[:, 1] > v[:, 0]).sum())} of {len(v)} objects better per object)")


if __name__ == "__main__":
    main()
