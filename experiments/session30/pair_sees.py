"""What the pair can see, for two evaluations of the same items: where each model loses its IoU, and
paired intervals for what carving with both views' true depth adds and for the gap between them.

    python experiments/session30/pair_sees.py runs/s30/vis29b/rig-mono runs/s30/vis29b/rig-stereo

Reads each folder's metrics.json (``stereo-occ evaluate``, since session 30: docs/evaluation.md, "What
the pair can see"); intervals are bootstrap intervals over objects (stereo_occ.evaluation.statistics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stereo_occ.config import CATEGORIES
from stereo_occ.evaluation.statistics import paired_difference
from stereo_occ.evaluation.visibility import VISIBILITY_METRICS


def as_iou(rows: list[dict], metric: str) -> list[dict]:
    """The rows with ``metric`` in the place of ``iou`` (to pair one metric against another)."""
    return [{**row, "iou": row[metric]} for row in rows]


def interval(d: dict) -> str:
    cats = " ".join(f"{c} {d['categories'][c]['mean']:+.3f}" for c in CATEGORIES if c in d["categories"])
    return f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] ({cats})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path, help="evaluation folder of the first model (the mono twin, say)")
    parser.add_argument("other", type=Path, help="evaluation folder of the second (rig-stereo, say)")
    args = parser.parse_args()
    runs = {folder.name: json.loads((folder / "metrics.json").read_text()) for folder in (args.baseline, args.other)}
    for name, m in runs.items():
        print(f"{name} ({m['n_objects']} objects x {m['views_per_object']} views)")
        for metric in ("iou", *VISIBILITY_METRICS):
            print(f"  {metric:17s} " + " ".join(f"{c} {m[metric][c]:.3f}" for c in CATEGORIES) + f"  mean {m[metric]['mean']:.3f}")
        lost = [m[k]["mean"] for k in VISIBILITY_METRICS[:-1]]
        print(f"  share of the lost IoU: seen {lost[0] / sum(lost):.0%}, surface {lost[1] / sum(lost):.0%}, "
              f"blind {lost[2] / sum(lost):.0%}")
        rows = m["per_object"]
        print(f"  given depth - as predicted: {interval(paired_difference(as_iou(rows, 'iou_given_depth'), rows, 'iou'))}")
    (a, base), (b, other) = runs.items()
    for metric in ("iou", "iou_given_depth", "iou_lost_seen", "iou_lost_surface", "iou_lost_hidden"):
        d = paired_difference(as_iou(other["per_object"], metric), as_iou(base["per_object"], metric), "iou")
        print(f"{b} - {a}, {metric}: {interval(d)}")
    d = paired_difference(as_iou(base["per_object"], "iou_given_depth"), other["per_object"], "iou")
    print(f"{a} given depth - {b} as predicted: {interval(d)}")


if __name__ == "__main__":
    main()
