"""Per-category test IoU of two evaluations of the same objects, and their paired difference.

    python experiments/session12/paired.py runs/v/NEW/eval runs/v/BASELINE/eval

Reads each folder's metrics.json (written by ``stereo-occ evaluate``); the differences are
bootstrap intervals over the objects both evaluated (stereo_occ.evaluation.statistics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stereo_occ.config import CATEGORIES
from stereo_occ.evaluation.statistics import paired_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", type=Path, help="evaluation folder of the variant")
    parser.add_argument("baseline", type=Path, help="evaluation folder of the baseline")
    args = parser.parse_args()
    new, old = (json.loads((folder / "metrics.json").read_text()) for folder in (args.new, args.baseline))
    for name, m in (("new", new), ("baseline", old)):
        per_category = " ".join(f"{c} {m['iou'][c]:.3f}" for c in CATEGORIES if c in m["iou"])
        print(f"{name:9s} mean {m['iou']['mean']:.3f}  {per_category}  (threshold {m['threshold']})")
    diff = paired_difference(new["per_object"], old["per_object"], "iou")
    lo, hi = diff["ci"]
    print(f"new - baseline: {diff['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]" + ("" if diff["significant"] else " (n.s.)"))
    for category, d in diff["categories"].items():
        if d is not None:
            print(f"  {category:6s} {d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")


if __name__ == "__main__":
    main()
